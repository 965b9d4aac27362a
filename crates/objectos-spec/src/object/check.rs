//! Shared machinery of the metadata validators: a diagnostic sink, key tables, typed lookups and "did you mean" suggestions.

use crate::diag::{Diagnostic, Severity};
use crate::yaml::{Located, LocatedKey, Node, join};

/// A source position (1-based; 0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl From<&Located> for Pos {
    fn from(n: &Located) -> Self {
        Pos {
            line: n.line,
            column: n.column,
        }
    }
}

impl From<&LocatedKey> for Pos {
    fn from(k: &LocatedKey) -> Self {
        Pos {
            line: k.line,
            column: k.column,
        }
    }
}

/// Collects the diagnostics of one file.
#[derive(Debug)]
pub(crate) struct Sink {
    file: String,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// How many of the errors are unknown keys (see [`Sink::has_shape_errors`]).
    unknown_keys: usize,
}

impl Sink {
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            diagnostics: Vec::new(),
            unknown_keys: 0,
        }
    }

    fn push(&mut self, severity: Severity, pos: Pos, path: &str, message: String) {
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            severity,
            message,
        });
    }

    pub(crate) fn error(&mut self, pos: impl Into<Pos>, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, pos.into(), path, message.into());
    }

    pub(crate) fn warning(&mut self, pos: impl Into<Pos>, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, pos.into(), path, message.into());
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// True when an error other than an unknown key was reported. Unknown keys do not stop the
    /// typed checks that follow (the types skip keys they do not know), so a file with a typo
    /// still gets every other problem reported at once.
    pub(crate) fn has_shape_errors(&self) -> bool {
        self.diagnostics.iter().filter(|d| d.is_error()).count() > self.unknown_keys
    }
}

/// The shape a key's value must have.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Any,
    Str,
    Bool,
    /// A whole number >= 0.
    Int,
    Num,
    StrList,
    Map,
    Seq,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    BoolOrMap,
    /// A key of the ObjectStack spec that ObjectOS does not act on (UI hints, 17.x additions):
    /// accepted with a warning, so metadata written for the spec loads, and kept so it round-trips.
    Unused,
}

/// A known key of a mapping, its accepted aliases (snake_case spellings, ObjectOS names) and its shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) aliases: &'static [&'static str],
    pub(crate) kind: Kind,
}

pub(crate) const fn key(name: &'static str, kind: Kind) -> Key {
    Key {
        name,
        aliases: &[],
        kind,
    }
}

pub(crate) const fn key_a(name: &'static str, aliases: &'static [&'static str], kind: Kind) -> Key {
    Key {
        name,
        aliases,
        kind,
    }
}

/// A checked mapping: known keys resolved to their canonical names, values of the wrong shape already reported.
#[derive(Debug)]
pub(crate) struct MapView<'a> {
    /// Where missing keys are reported (usually the key that holds this mapping).
    pub(crate) pos: Pos,
    pub(crate) path: String,
    entries: Vec<Entry<'a>>,
}

#[derive(Debug)]
struct Entry<'a> {
    name: &'static str,
    key: &'a LocatedKey,
    value: &'a Located,
    ok: bool,
}

/// The prefix of custom keys: accepted anywhere in metadata, kept, and ignored by ObjectOS (the
/// OpenAPI convention, and no ObjectStack key starts with it).
pub(crate) const CUSTOM_KEY_PREFIX: &str = "x-";

/// Checks that `node` is a mapping whose keys are in `keys`, with values of the right shape.
///
/// An unknown key is an error (with a suggestion when one is close): a misspelt `requird: true`
/// would otherwise leave the field optional with nothing but a warning in a log. Keys starting
/// with [`CUSTOM_KEY_PREFIX`] are the documented way to add custom data. With `warn_unknown`
/// false unknown keys are let through silently (mappings whose keys are user data).
/// Returns `None` (after reporting) when `node` is not a mapping.
pub(crate) fn view<'a>(
    sink: &mut Sink,
    node: &'a Located,
    pos: Pos,
    path: &str,
    what: &str,
    keys: &[Key],
    warn_unknown: bool,
) -> Option<MapView<'a>> {
    let Some(entries) = node.entries() else {
        sink.error(
            pos,
            path,
            format!("{what} must be a mapping, found {}", node.kind_name()),
        );
        return None;
    };
    let mut out: Vec<Entry<'a>> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let Some(spec) = keys
            .iter()
            .find(|s| s.name == k.name || s.aliases.contains(&k.name.as_str()))
        else {
            if warn_unknown && !k.name.starts_with(CUSTOM_KEY_PREFIX) {
                let known = || keys.iter().filter(|s| !matches!(s.kind, Kind::Unused));
                let message = match suggest(&k.name, keys.iter().map(|s| s.name)) {
                    Some(s) => format!("unknown key `{}`; did you mean `{s}`?", k.name),
                    None if keys.len() <= 16 => format!(
                        "unknown key `{}`; {what} accepts {} (custom keys start with `{CUSTOM_KEY_PREFIX}`)",
                        k.name,
                        list(known().map(|s| s.name))
                    ),
                    None => format!(
                        "unknown key `{}`; custom keys start with `{CUSTOM_KEY_PREFIX}`",
                        k.name
                    ),
                };
                sink.error(k, path, message);
                sink.unknown_keys += 1;
            }
            continue;
        };
        if matches!(spec.kind, Kind::Unused) {
            sink.warning(
                k,
                path,
                format!(
                    "`{}` is an ObjectStack key that ObjectOS does not act on; it is kept but has no effect here",
                    k.name
                ),
            );
            continue;
        }
        if let Some(first) = out.iter().find(|e| e.name == spec.name) {
            sink.error(
                k,
                path,
                format!(
                    "`{}` and `{}` (line {}) are the same key; keep one",
                    k.name, first.key.name, first.key.line
                ),
            );
            continue;
        }
        let ok = check_kind(sink, v, &join(path, &k.name), spec.kind);
        out.push(Entry {
            name: spec.name,
            key: k,
            value: v,
            ok,
        });
    }
    Some(MapView {
        pos,
        path: path.to_owned(),
        entries: out,
    })
}

/// Reports `node` when it does not have shape `kind`; returns whether it has.
pub(crate) fn check_kind(sink: &mut Sink, node: &Located, path: &str, kind: Kind) -> bool {
    let found = || describe(node);
    let expected = match kind {
        Kind::Any | Kind::Unused => return true,
        Kind::Str if matches!(node.node, Node::String(_)) => return true,
        Kind::Str => match node.node {
            Node::Number(_) | Node::Bool(_) => {
                format!("expected a string, found {}; put it in quotes", found())
            }
            _ => format!("expected a string, found {}", found()),
        },
        Kind::Bool if matches!(node.node, Node::Bool(_)) => return true,
        Kind::Bool => format!("expected true or false, found {}", found()),
        Kind::Int if node.as_u64().is_some() => return true,
        Kind::Int => format!("expected a whole number >= 0, found {}", found()),
        Kind::Num if matches!(node.node, Node::Number(_)) => return true,
        Kind::Num => format!("expected a number, found {}", found()),
        Kind::Map if matches!(node.node, Node::Map(_)) => return true,
        Kind::Map => format!("expected a mapping, found {}", found()),
        Kind::Seq if matches!(node.node, Node::Seq(_)) => return true,
        Kind::Seq => format!("expected a list, found {}", found()),
        Kind::BoolOrMap if matches!(node.node, Node::Bool(_) | Node::Map(_)) => return true,
        Kind::BoolOrMap => format!("expected true, false or a mapping, found {}", found()),
        Kind::StrList => {
            let Some(items) = node.items() else {
                sink.error(
                    node,
                    path,
                    format!("expected a list of strings, found {}", found()),
                );
                return false;
            };
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                if item.as_str().is_none() {
                    sink.error(
                        item,
                        &format!("{path}[{i}]"),
                        format!("expected a string, found {}", describe(item)),
                    );
                    ok = false;
                }
            }
            return ok;
        }
        Kind::OneOf(values) => match node.as_str() {
            Some(s) if values.contains(&s) => return true,
            Some(s) => {
                let hint = suggest(s, values.iter().copied())
                    .map(|m| format!(" (did you mean `{m}`?)"))
                    .unwrap_or_default();
                format!(
                    "`{s}` is not allowed here{hint}; expected one of {}",
                    list(values.iter().copied())
                )
            }
            None => format!(
                "expected one of {}, found {}",
                list(values.iter().copied()),
                found()
            ),
        },
    };
    sink.error(node, path, expected);
    false
}

/// `a string \`x\``, `the number 5`, `a list`: what a node is, for messages.
pub(crate) fn describe(node: &Located) -> String {
    match &node.node {
        Node::Null => "nothing (null)".to_owned(),
        Node::Bool(b) => format!("`{b}`"),
        Node::Number(n) => format!("the number {n}"),
        Node::String(s) => format!("the string `{s}`"),
        Node::Seq(_) => "a list".to_owned(),
        Node::Map(_) => "a mapping".to_owned(),
    }
}

impl<'a> MapView<'a> {
    fn entry(&self, name: &str) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The value of `name` when present and of the right shape.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Located> {
        self.entry(name).filter(|e| e.ok).map(|e| e.value)
    }

    /// True when `name` (or an alias) is present, whatever its shape.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// Position of the key `name` (or of the mapping when absent).
    pub(crate) fn key_pos(&self, name: &str) -> Pos {
        self.entry(name).map_or(self.pos, |e| Pos::from(e.key))
    }

    /// Path of the key `name` as written (aliases keep their spelling).
    pub(crate) fn path_of(&self, name: &str) -> String {
        join(
            &self.path,
            self.entry(name).map_or(name, |e| e.key.name.as_str()),
        )
    }

    pub(crate) fn str(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(Located::as_str)
    }

    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).and_then(Located::as_bool)
    }

    pub(crate) fn f64(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Located::as_f64)
    }

    pub(crate) fn u64(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(Located::as_u64)
    }

    /// The strings of a `StrList` key with their nodes.
    pub(crate) fn strs(&self, name: &str) -> Vec<(&'a str, &'a Located)> {
        self.get(name)
            .and_then(Located::items)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(|s| (s, i)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reports a missing key as "missing required key `name`: hint"; returns the value when
    /// present and of the right shape.
    pub(crate) fn require(&self, sink: &mut Sink, name: &str, hint: &str) -> Option<&'a Located> {
        self.require_or(
            sink,
            name,
            &format!("missing required key `{name}`: {hint}"),
        )
    }

    /// Like [`MapView::require`], with a complete message of its own.
    pub(crate) fn require_or(
        &self,
        sink: &mut Sink,
        name: &str,
        message: &str,
    ) -> Option<&'a Located> {
        match self.entry(name) {
            Some(e) => e.ok.then_some(e.value),
            None => {
                sink.error(self.pos, &self.path, message);
                None
            }
        }
    }
}

/// `a, b or c`.
pub(crate) fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| format!("`{s}`")).collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The candidate closest to `word`, when it is close enough to be a plausible typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let squash = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let squashed = squash(word);
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let d = if squash(c) == squashed {
            0
        } else {
            distance(word, c)
        };
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance, counting an adjacent swap as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// A name that satisfies `^[a-z_][a-z0-9_]*$`, derived from `name` (for "try `x`" hints).
pub(crate) fn to_snake(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            prev_lower = true;
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let trimmed = out.trim_matches('_');
    let mut out = if trimmed.is_empty() {
        "_".to_owned()
    } else {
        trimmed.to_owned()
    };
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("lable", ["label", "name"]), Some("label"));
        assert_eq!(suggest("txt", ["text", "textarea"]), Some("text"));
        assert_eq!(
            suggest("plural_label", ["pluralLabel"]),
            Some("pluralLabel")
        );
        assert_eq!(suggest("zzzzzz", ["label"]), None);
        assert_eq!(
            suggest("masterdetail", ["master_detail"]),
            Some("master_detail")
        );
    }

    #[test]
    fn snake() {
        assert_eq!(to_snake("Invoice Line"), "invoice_line");
        assert_eq!(to_snake("invoiceLine"), "invoice_line");
        assert_eq!(to_snake("1st"), "_1st");
    }

    #[test]
    fn lists() {
        assert_eq!(list(["a"]), "`a`");
        assert_eq!(list(["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
