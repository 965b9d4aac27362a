//! Lexer for the formula dialect: turns source text into tokens with byte spans.

use super::ExprError;

/// One token kind. Keywords are recognised case-insensitively.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Num(f64),
    Str(String),
    /// A bare field name or dotted path (`amount`, `account.name`), or a function name.
    Ident(String),
    True,
    False,
    Null,
    And,
    Or,
    Not,
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    AndAnd,
    OrOr,
    Eof,
}

impl Tok {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self, src: &str, start: usize, end: usize) -> String {
        match self {
            Tok::Eof => "end of input".to_owned(),
            _ => {
                let text = src.get(start..end).unwrap_or("");
                format!("`{}`", super::truncate(text, 40))
            }
        }
    }
}

/// A token and its byte span in the source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = |tok: Tok| Token {
            tok,
            start,
            end: start + 1,
        };
        let double = |tok: Tok| Token {
            tok,
            start,
            end: start + 2,
        };
        let next = bytes.get(i + 1).copied();
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => out.push(single(Tok::LParen)),
            b')' => out.push(single(Tok::RParen)),
            b',' => out.push(single(Tok::Comma)),
            b'+' => out.push(single(Tok::Plus)),
            b'-' => out.push(single(Tok::Minus)),
            b'*' => out.push(single(Tok::Star)),
            b'/' => out.push(single(Tok::Slash)),
            b'%' => out.push(single(Tok::Percent)),
            b'=' if next == Some(b'=') => out.push(double(Tok::Eq)),
            b'=' => out.push(single(Tok::Eq)),
            b'!' if next == Some(b'=') => out.push(double(Tok::Ne)),
            b'!' => {
                return Err(ExprError::syntax(
                    src,
                    start,
                    "unexpected `!`",
                    "use NOT(...) for negation or `!=` for inequality",
                ));
            }
            b'<' if next == Some(b'>') => out.push(double(Tok::Ne)),
            b'<' if next == Some(b'=') => out.push(double(Tok::Le)),
            b'<' => out.push(single(Tok::Lt)),
            b'>' if next == Some(b'=') => out.push(double(Tok::Ge)),
            b'>' => out.push(single(Tok::Gt)),
            b'&' if next == Some(b'&') => out.push(double(Tok::AndAnd)),
            b'&' => {
                return Err(ExprError::syntax(
                    src,
                    start,
                    "unexpected `&`",
                    "`&` is not an operator in this dialect: use CONCAT(a, b) to join text \
                     (or `&&` / AND for a logical and)",
                ));
            }
            b'|' if next == Some(b'|') => out.push(double(Tok::OrOr)),
            b'|' => {
                return Err(ExprError::syntax(
                    src,
                    start,
                    "unexpected `|`",
                    "use `||` or OR for a logical or",
                ));
            }
            b'\'' | b'"' => {
                let (text, end) = lex_string(src, start)?;
                out.push(Token {
                    tok: Tok::Str(text),
                    start,
                    end,
                });
                i = end;
                continue;
            }
            b'0'..=b'9' | b'.' => {
                let end = lex_number_end(src, start)?;
                let text = &src[start..end];
                let value: f64 = text.parse().map_err(|_| {
                    ExprError::syntax(
                        src,
                        start,
                        format!("invalid number `{text}`"),
                        "expected a number such as 12 or 1.5",
                    )
                })?;
                if !value.is_finite() {
                    return Err(ExprError::syntax(
                        src,
                        start,
                        format!("number `{}` is too large", super::truncate(text, 40)),
                        "expected a finite number",
                    ));
                }
                out.push(Token {
                    tok: Tok::Num(value),
                    start,
                    end,
                });
                i = end;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let end = lex_ident_end(bytes, start);
                let text = &src[start..end];
                let tok = match text.to_ascii_uppercase().as_str() {
                    "TRUE" => Tok::True,
                    "FALSE" => Tok::False,
                    "NULL" => Tok::Null,
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    _ => Tok::Ident(text.to_owned()),
                };
                out.push(Token { tok, start, end });
                i = end;
                continue;
            }
            _ => {
                let ch = src[start..].chars().next().unwrap_or('?');
                let hint = if ch == '{' || ch == '}' {
                    "write field names bare (`amount`), without `{{ }}`"
                } else {
                    "expected a field name, a literal, an operator or a parenthesis"
                };
                return Err(ExprError::syntax(
                    src,
                    start,
                    format!("unexpected character `{ch}`"),
                    hint,
                ));
            }
        }
        // Every arm that reaches here pushed a token; advance past it.
        i = out.last().map_or(i + 1, |t| t.end);
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

/// Returns the end of an identifier or dotted path starting at `start`.
fn lex_ident_end(bytes: &[u8], start: usize) -> usize {
    let is_start = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    let is_cont = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = start + 1;
    loop {
        while i < bytes.len() && is_cont(bytes[i]) {
            i += 1;
        }
        // A dot continues the path only when another name segment follows it.
        if i + 1 < bytes.len() && bytes[i] == b'.' && is_start(bytes[i + 1]) {
            i += 2;
        } else {
            return i;
        }
    }
}

/// Returns the end of a number literal (`12`, `1.5`, `.5`, `1e3`, `2.5E-2`).
fn lex_number_end(src: &str, start: usize) -> Result<usize, ExprError> {
    let bytes = src.as_bytes();
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    if i < bytes.len() && bytes[i] == b'.' {
        let after = digits(i + 1);
        if after == i + 1 {
            return Err(ExprError::syntax(
                src,
                i,
                "unexpected `.`",
                "expected a digit after `.` in a number",
            ));
        }
        i = after;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        let after = digits(j);
        if after == j {
            return Err(ExprError::syntax(
                src,
                i,
                "incomplete exponent",
                "expected digits after the exponent marker in a number",
            ));
        }
        i = after;
    }
    if i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
        return Err(ExprError::syntax(
            src,
            i,
            "unexpected letter after a number",
            "expected an operator between a number and a name",
        ));
    }
    Ok(i)
}

/// Lexes a quoted string starting at `start`; returns the unescaped text and the end offset.
///
/// Unknown escapes keep their backslash so that regular expressions such as `'^\d+$'` can be
/// written without doubling every backslash.
fn lex_string(src: &str, start: usize) -> Result<(String, usize), ExprError> {
    let rest = &src[start..];
    let mut chars = rest.char_indices();
    let quote = chars.next().map_or('"', |(_, c)| c);
    let mut out = String::new();
    while let Some((off, c)) = chars.next() {
        if c == quote {
            return Ok((out, start + off + c.len_utf8()));
        }
        if c == '\\' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '\'')) => out.push('\''),
                Some((_, '"')) => out.push('"'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(ExprError::syntax(
        src,
        start,
        "unterminated string",
        format!("expected a closing {quote}"),
    ))
}
