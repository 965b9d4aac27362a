//! Locale-aware formatting for templates: numbers, amounts and dates as English, German and
//! French write them (CLDR's conventions for `en`, `de`, `fr`). Other locales are written the
//! English way; a regional tag uses its language's rules (`de-CH` as `de`).

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use objectos_kernel::contracts::DateStyle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    De,
    Fr,
}

fn lang(locale: &str) -> Lang {
    match locale.split('-').next().unwrap_or("") {
        l if l.eq_ignore_ascii_case("de") => Lang::De,
        l if l.eq_ignore_ascii_case("fr") => Lang::Fr,
        _ => Lang::En,
    }
}

/// Grouping and decimal separators.
fn separators(lang: Lang) -> (&'static str, &'static str) {
    match lang {
        Lang::En => (",", "."),
        Lang::De => (".", ","),
        // CLDR: a narrow no-break space groups French digits.
        Lang::Fr => ("\u{202f}", ","),
    }
}

/// `value` rounded to `decimals` digits, grouped by thousands.
pub fn number(locale: &str, value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let (group, decimal) = separators(lang(locale));
    let text = format!("{:.*}", decimals, value.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push_str(group);
        }
        grouped.push(ch);
    }
    // "-0.00" would show a sign on a zero.
    let negative = value < 0.0 && text.bytes().any(|b| (b'1'..=b'9').contains(&b));
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&grouped);
    if !frac.is_empty() {
        out.push_str(decimal);
        out.push_str(frac);
    }
    out
}

/// Symbol and minor digits of the common ISO 4217 codes; others are written with their code.
fn currency_info(code: &str) -> (String, usize) {
    let code = code.trim().to_ascii_uppercase();
    match code.as_str() {
        "EUR" => ("€".into(), 2),
        "USD" => ("$".into(), 2),
        "GBP" => ("£".into(), 2),
        "JPY" => ("¥".into(), 0),
        _ => (code, 2),
    }
}

/// An amount: `€1,234.50` (en), `1.234,50 €` (de), `1 234,50 €` (fr).
pub fn currency(locale: &str, value: f64, code: &str) -> String {
    let l = lang(locale);
    let (symbol, digits) = currency_info(code);
    let n = number(locale, value.abs(), digits);
    let sign = if value < 0.0 && n.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        "-"
    } else {
        ""
    };
    match l {
        Lang::En if symbol.chars().count() == 1 => format!("{sign}{symbol}{n}"),
        Lang::En => format!("{sign}{symbol}\u{a0}{n}"),
        Lang::De | Lang::Fr => format!("{sign}{n}\u{a0}{symbol}"),
    }
}

const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DE_MONTHS: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const FR_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// A date: short `12/6/2026` / `06.12.2026` / `06/12/2026`; long `December 6, 2026` /
/// `6. Dezember 2026` / `6 décembre 2026`.
pub fn date(locale: &str, d: NaiveDate, style: DateStyle) -> String {
    let (y, m, day) = (d.year(), d.month(), d.day());
    let month = usize::try_from(m.saturating_sub(1)).unwrap_or(0).min(11);
    match (lang(locale), style) {
        (Lang::En, DateStyle::Short) => format!("{m}/{day}/{y}"),
        (Lang::De, DateStyle::Short) => format!("{day:02}.{m:02}.{y}"),
        (Lang::Fr, DateStyle::Short) => format!("{day:02}/{m:02}/{y}"),
        (Lang::En, DateStyle::Long) => format!("{} {day}, {y}", EN_MONTHS[month]),
        (Lang::De, DateStyle::Long) => format!("{day}. {} {y}", DE_MONTHS[month]),
        (Lang::Fr, DateStyle::Long) => {
            // French writes the first of the month as an ordinal: 1er.
            let day = if day == 1 {
                "1er".to_owned()
            } else {
                day.to_string()
            };
            format!("{day} {} {y}", FR_MONTHS[month])
        }
    }
}

/// A point in time in UTC: the date, then the time (`3:04 PM` in English, `15:04` otherwise).
pub fn datetime(locale: &str, at: DateTime<Utc>, style: DateStyle) -> String {
    let d = date(locale, at.date_naive(), style);
    let (h, min) = (at.hour(), at.minute());
    match lang(locale) {
        Lang::En => {
            let (pm, h12) = at.hour12();
            let suffix = if pm { "PM" } else { "AM" };
            format!("{d}, {h12}:{min:02}\u{202f}{suffix} UTC")
        }
        Lang::De => format!("{d}, {h:02}:{min:02} UTC"),
        Lang::Fr => format!("{d} {h:02}:{min:02} UTC"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_per_locale() {
        assert_eq!(number("en", 1_234_567.891, 2), "1,234,567.89");
        assert_eq!(number("de-CH", 1_234_567.891, 2), "1.234.567,89");
        assert_eq!(number("fr", 1234.5, 1), "1\u{202f}234,5");
        assert_eq!(number("de", -0.001, 2), "0,00");
        assert_eq!(number("en", -999.0, 0), "-999");
        assert_eq!(number("en", 100.0, 0), "100");
    }

    #[test]
    fn amounts_per_locale() {
        assert_eq!(currency("en", 1234.5, "EUR"), "€1,234.50");
        assert_eq!(currency("de", 1234.5, "eur"), "1.234,50\u{a0}€");
        assert_eq!(currency("fr", -1234.5, "EUR"), "-1\u{202f}234,50\u{a0}€");
        assert_eq!(currency("en", 10.0, "CHF"), "CHF\u{a0}10.00");
        assert_eq!(currency("de", 1500.0, "JPY"), "1.500\u{a0}¥");
    }

    #[test]
    fn dates_per_locale() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap_or_default();
        assert_eq!(date("en", d, DateStyle::Short), "12/6/2026");
        assert_eq!(date("de", d, DateStyle::Short), "06.12.2026");
        assert_eq!(date("fr", d, DateStyle::Short), "06/12/2026");
        assert_eq!(date("en", d, DateStyle::Long), "December 6, 2026");
        assert_eq!(date("de", d, DateStyle::Long), "6. Dezember 2026");
        let first = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
        assert_eq!(date("fr", first, DateStyle::Long), "1er mars 2026");
        let at = first.and_hms_opt(15, 4, 0).unwrap_or_default().and_utc();
        assert_eq!(
            datetime("de", at, DateStyle::Short),
            "01.03.2026, 15:04 UTC"
        );
        assert_eq!(
            datetime("en", at, DateStyle::Short),
            "3/1/2026, 3:04\u{202f}PM UTC"
        );
    }
}
