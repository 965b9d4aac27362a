//! Which locales a request reads in: `Accept-Language` parsed with its q-values (RFC 9110
//! 12.5.4), and the chain built from the request's preferences, each followed by its shorter
//! forms (`de-CH-1996`, `de-CH`, `de`), then the fallback and default locales.

use crate::bundle::canonical_locale;

/// The languages of an `Accept-Language` header, most preferred first (ties keep header
/// order); `q=0` entries, `*` and malformed tags are left out.
pub fn parse_accept_language(header: &str) -> Vec<String> {
    let mut ranked: Vec<(u16, usize, String)> = Vec::new();
    for (i, part) in header.split(',').enumerate() {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or("").trim();
        if tag.is_empty() || tag == "*" {
            continue;
        }
        let mut q = 1000u16;
        for p in pieces {
            let p = p.trim();
            if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                q = parse_q(v).unwrap_or(0);
            }
        }
        if q == 0 {
            continue;
        }
        if let Ok(locale) = canonical_locale(tag) {
            ranked.push((q, i, locale));
        }
    }
    // Higher q first; the header's order breaks ties.
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, _, l)| l).collect()
}

/// A q-value as thousandths (`0.8` is 800); `None` when it is not one (RFC: 0 to 1, at most
/// three decimals).
fn parse_q(text: &str) -> Option<u16> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let mut thousandths: u16 = 0;
    for (i, b) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .enumerate()
    {
        let d = u16::from(b - b'0');
        thousandths += d * [100, 10, 1][i];
    }
    let q = whole * 1000 + thousandths;
    (q <= 1000).then_some(q)
}

/// A tag followed by its shorter forms: `de-CH-1996`, `de-CH`, `de`.
pub fn truncations(tag: &str) -> Vec<String> {
    let mut out = vec![tag.to_owned()];
    let mut rest = tag;
    while let Some((head, _)) = rest.rsplit_once('-') {
        out.push(head.to_owned());
        rest = head;
    }
    out
}

/// The chain: every preference (in order) with its shorter forms, then `fallback`, then
/// `default`; only locales `served` answers, each once. Never empty: `default` is always last,
/// and nothing follows it: metadata is authored in the default locale, so a request that
/// reaches it reads the authored texts rather than another language's.
pub fn chain(
    preferences: &[String],
    served: &dyn Fn(&str) -> bool,
    fallback: Option<&str>,
    default: &str,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let candidates = preferences
        .iter()
        .map(String::as_str)
        .chain(fallback)
        .flat_map(truncations)
        .chain(std::iter::once(default.to_owned()));
    for t in candidates {
        if (t == default || served(&t)) && !out.contains(&t) {
            let last = t == default;
            out.push(t);
            if last {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_by_q_value() {
        assert_eq!(
            parse_accept_language("fr;q=0.5, de-CH, en;q=0.8, *;q=0.1, xx-;q=0.9, it;q=0"),
            vec!["de-CH", "en", "fr"]
        );
        assert_eq!(parse_accept_language("de;q=1.5"), Vec::<String>::new());
        assert_eq!(parse_accept_language(""), Vec::<String>::new());
        assert_eq!(parse_accept_language("en-us"), vec!["en-US"]);
    }

    #[test]
    fn chain_walks_to_the_default() {
        let served = |l: &str| ["en", "de", "fr"].contains(&l);
        assert_eq!(
            chain(&["de-CH".into()], &served, None, "en"),
            vec!["de", "en"]
        );
        assert_eq!(
            chain(&["it".into(), "fr-CA".into()], &served, Some("de"), "en"),
            vec!["fr", "de", "en"]
        );
        assert_eq!(chain(&[], &served, None, "en"), vec!["en"]);
        // The default ends the chain: an English reader is not shown German.
        assert_eq!(
            chain(&["en-GB".into(), "de".into()], &served, None, "en"),
            vec!["en"]
        );
    }
}
