//! Located YAML/JSON trees: parse user files into a value tree that remembers the line of every node.
//!
//! Metadata validation walks this tree instead of typed structs so it can report every problem of a
//! file at once, each with its YAML path and line. [`Located::to_json`] turns a checked tree into a
//! `serde_json::Value` for the typed serde step.

use serde::de;
use serde_saphyr::{DuplicateKeyPolicy, MessageFormatter};

use crate::diag::{Diagnostic, Severity};

/// Largest document accepted, in bytes. Metadata files are small; anything bigger is a mistake or an attack.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;

/// The syntax a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// Guesses the format from a file name: `.json` is JSON, everything else is YAML.
    pub fn from_path(path: &str) -> Self {
        if path.to_ascii_lowercase().ends_with(".json") {
            Self::Json
        } else {
            Self::Yaml
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        }
    }
}

/// A parsed value. Every child carries its own position.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<Located>),
    /// Entries in document order; keys are unique (duplicates are reported by the parser and dropped).
    Map(Vec<(LocatedKey, Located)>),
}

/// A node with its 1-based line and column (0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub node: Node,
    pub line: usize,
    pub column: usize,
}

/// A mapping key with its position. Non-string scalar keys (`1:`, `true:`) are kept as their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedKey {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

impl Located {
    pub fn new(node: Node, line: usize, column: usize) -> Self {
        Self { node, line, column }
    }

    /// The 1-based line and column of the node `path` names (`objects.account.allowEdit`,
    /// `rowLevelSecurity[1].using`, `fields.account.amount.editable`: keys may hold dots), or
    /// of the deepest node on the way when the path goes further than the document; a problem a
    /// typed validator reports by path is shown where it is.
    pub fn position_of(&self, path: &str) -> (usize, usize) {
        let mut node = self;
        let mut pos = (self.line, self.column);
        let mut rest = path;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let Some((index, tail)) = after.split_once(']') else {
                    break;
                };
                let Some(item) = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| node.items().and_then(|items| items.get(i)))
                else {
                    break;
                };
                node = item;
                pos = (item.line, item.column);
                rest = tail.strip_prefix('.').unwrap_or(tail);
                continue;
            }
            let Node::Map(entries) = &node.node else {
                break;
            };
            // The longest key that the path continues from: `account.amount` before `account`.
            let found = entries
                .iter()
                .filter(|(k, _)| {
                    rest == k.name
                        || rest
                            .strip_prefix(k.name.as_str())
                            .is_some_and(|t| t.starts_with('.') || t.starts_with('['))
                })
                .max_by_key(|(k, _)| k.name.len());
            let Some((k, v)) = found else {
                break;
            };
            pos = (k.line, k.column);
            node = v;
            let tail = &rest[k.name.len()..];
            rest = tail.strip_prefix('.').unwrap_or(tail);
        }
        pos
    }

    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Located> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The key and value under `key` when this is a mapping.
    pub fn entry(&self, key: &str) -> Option<(&LocatedKey, &Located)> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, v)| (k, v))
    }

    pub fn entries(&self) -> Option<&[(LocatedKey, Located)]> {
        match &self.node {
            Node::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn items(&self) -> Option<&[Located]> {
        match &self.node {
            Node::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.node {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.node {
            Node::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match &self.node {
            Node::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match &self.node {
            Node::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.node, Node::Null)
    }

    /// What kind of value this is, with an article, for messages: `a string`, `a list`.
    pub fn kind_name(&self) -> &'static str {
        match &self.node {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    /// The plain JSON value of this tree (positions dropped, key order kept).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(Located::to_json).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// The result of loading a metadata file: the typed value, and every problem found.
///
/// `value` is `None` when any diagnostic is an error; warnings alone keep the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    pub value: Option<T>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<T> Loaded<T> {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.diagnostics.len() - self.error_count()
    }

    /// The value, or every diagnostic when there is none.
    pub fn into_result(self) -> Result<(T, Vec<Diagnostic>), Vec<Diagnostic>> {
        match self.value {
            Some(v) => Ok((v, self.diagnostics)),
            None => Err(self.diagnostics),
        }
    }
}

/// The result of parsing one document: the tree when the syntax was readable, and every problem found.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// `None` when the document could not be read at all.
    pub root: Option<Located>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses `text` as YAML or JSON into a located tree.
///
/// Syntax errors, size and depth limits, alias bombs and duplicate keys become diagnostics naming
/// `file`; this never panics on any input.
pub fn parse(file: &str, text: &str, format: Format) -> Parsed {
    let error = |line: usize, column: usize, message: String| Diagnostic {
        file: file.to_owned(),
        line,
        column,
        path: String::new(),
        severity: Severity::Error,
        message,
    };
    if text.len() > MAX_DOCUMENT_BYTES {
        return Parsed {
            root: None,
            diagnostics: vec![error(
                0,
                0,
                format!(
                    "file is {} bytes; metadata files may be at most {} bytes (4 MiB)",
                    text.len(),
                    MAX_DOCUMENT_BYTES
                ),
            )],
        };
    }
    if text.trim().is_empty() {
        return Parsed {
            root: None,
            diagnostics: vec![error(1, 1, "file is empty; expected a mapping".into())],
        };
    }
    let raw = match format {
        Format::Yaml => parse_yaml(text).map_err(|(line, column, msg)| error(line, column, msg)),
        Format::Json => json::parse(text).map_err(|(line, column, msg)| error(line, column, msg)),
    };
    match raw {
        Ok(raw) => {
            let mut diagnostics = Vec::new();
            let root = raw.into_located(file, &mut diagnostics);
            Parsed {
                root: Some(root),
                diagnostics,
            }
        }
        Err(d) => Parsed {
            root: None,
            diagnostics: vec![d],
        },
    }
}

/// A tree as the parsers build it: like [`Located`] but duplicate keys are still present.
#[derive(Debug)]
struct RawLocated {
    node: RawNode,
    line: usize,
    column: usize,
}

#[derive(Debug)]
enum RawNode {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<RawLocated>),
    Map(Vec<(LocatedKey, RawLocated)>),
}

impl RawLocated {
    /// Drops repeated keys (keeping the first) and reports each repetition with both lines.
    fn into_located(self, file: &str, diagnostics: &mut Vec<Diagnostic>) -> Located {
        self.into_located_at(file, "", diagnostics)
    }

    fn into_located_at(self, file: &str, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Located {
        let node = match self.node {
            RawNode::Null => Node::Null,
            RawNode::Bool(b) => Node::Bool(b),
            RawNode::Number(n) => Node::Number(n),
            RawNode::String(s) => Node::String(s),
            RawNode::Seq(items) => Node::Seq(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        item.into_located_at(file, &format!("{path}[{i}]"), diagnostics)
                    })
                    .collect(),
            ),
            RawNode::Map(entries) => {
                let mut out: Vec<(LocatedKey, Located)> = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    if let Some((first, _)) = out.iter().find(|(k, _)| k.name == key.name) {
                        diagnostics.push(Diagnostic {
                            file: file.to_owned(),
                            line: key.line,
                            column: key.column,
                            path: path.to_owned(),
                            severity: Severity::Error,
                            message: format!(
                                "duplicate key `{}`: first defined at line {}, again at line {}; each key may appear once in a mapping",
                                key.name, first.line, key.line
                            ),
                        });
                        continue;
                    }
                    let child = join(path, &key.name);
                    let value = value.into_located_at(file, &child, diagnostics);
                    out.push((key, value));
                }
                Node::Map(out)
            }
        };
        Located {
            node,
            line: self.line,
            column: self.column,
        }
    }
}

/// Appends `key` to a dotted path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn parse_yaml(text: &str) -> Result<RawLocated, (usize, usize, String)> {
    check_yaml(text)?;
    events::build(text)
}

/// First pass: serde-saphyr reads the whole document with budgets, so syntax errors, alias bombs,
/// over-deep nesting and multiple documents are refused with its located messages.
///
/// Reading into `IgnoredAny` keeps the stack shallow; the tree is then built iteratively from the
/// parser's events (see [`events`]), which a recursive serde visitor could not do within the
/// 2 MiB stack of a worker thread in debug builds.
fn check_yaml(text: &str) -> Result<(), (usize, usize, String)> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_reader_input_bytes: Some(MAX_DOCUMENT_BYTES),
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_nodes: MAX_NODES,
            max_events: 2 * MAX_NODES,
            max_recorded_anchor_events: 20_000,
            max_total_scalar_bytes: MAX_DOCUMENT_BYTES,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 50_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 1_000,
        },
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<de::IgnoredAny>(text, options) {
        Ok(_) => Ok(()),
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (to_usize(l.line()), to_usize(l.column())))
                .unwrap_or((0, 0));
            let message = serde_saphyr::UserMessageFormatter.format_message(&e);
            Err((line, column, describe_yaml_error(&message, column)))
        }
    }
}

/// Most nodes (scalars, lists, mappings) one document may hold, aliases expanded.
const MAX_NODES: usize = 200_000;

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// One line of plain text: the budget messages of the parser, and its syntax errors, put in our
/// words (see [`syntax_error`]).
fn describe_yaml_error(message: &str, column: usize) -> String {
    let cleaned: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if cleaned.contains("Depth {") || cleaned.contains("recursion limit") {
        format!(
            "invalid YAML: nesting is deeper than {MAX_DEPTH} levels; metadata files may nest at most {MAX_DEPTH} mappings and lists"
        )
    } else if cleaned.contains("Documents {") {
        syntax_error(
            Format::Yaml,
            column,
            "the file holds more than one YAML document (a `---` line starts another); a metadata file holds exactly one",
        )
    } else if cleaned.contains("budget breached") || cleaned.contains("limits breached") {
        // The parser names the limit as `Kind { count: n }`; keep the kind for the curious.
        let limit = cleaned
            .rsplit("breached: ")
            .next()
            .and_then(|s| s.split([' ', '{']).next())
            .unwrap_or("size");
        format!(
            "invalid YAML: the document is too large or expands too many aliases (limit `{limit}` reached); metadata files may hold at most {MAX_NODES} values with aliases expanded"
        )
    } else {
        syntax_error(Format::Yaml, column, &yaml_in_words(&cleaned))
    }
}

/// The start of every message about a document that could not be read at all (syntax, size,
/// nesting): nothing else of such a file is checked.
const UNREADABLE_PREFIXES: &[&str] = &[
    "YAML syntax error",
    "JSON syntax error",
    "invalid YAML",
    "invalid JSON",
];

/// True when `d` says its file could not be read at all (a syntax error, or a size or nesting
/// limit): such a file defines nothing, so later problems that name what it would have defined
/// are consequences, and this one is the cause to show first.
pub fn is_unreadable(d: &Diagnostic) -> bool {
    d.path.is_empty() && UNREADABLE_PREFIXES.iter().any(|p| d.message.starts_with(p))
}

/// `YAML syntax error at column 7: <what is wrong>; nothing else in this file was checked`. The
/// line is the diagnostic's own; the column is in the text because `file:line:` has no room for it.
fn syntax_error(format: Format, column: usize, what: &str) -> String {
    let at = if column > 0 {
        format!(" at column {column}")
    } else {
        String::new()
    };
    format!(
        "{} syntax error{at}: {what}; nothing else in this file was checked",
        format.as_str()
    )
}

/// The YAML parser's message for a syntax error, said the way a metadata author thinks about the
/// file (what to change), with the parser's own words kept for the cases not listed.
fn yaml_in_words(parser: &str) -> String {
    let says = |s: &str| parser.contains(s);
    let words = if says("unclosed bracket '['") {
        "a list opened with `[` is not closed; add the `]`"
    } else if says("unclosed bracket '{'") {
        "a mapping opened with `{` is not closed; add the `}`"
    } else if says("mismatched bracket") {
        "a bracket is closed by the wrong kind: `[` needs `]` and `{` needs `}`"
    } else if says("expected ',' or ']'") {
        "an inline list `[...]` misses a `,` between two items or its closing `]`"
    } else if says("expected ',' or '}'") {
        "an inline mapping `{...}` misses a `,` between two entries or its closing `}`"
    } else if says("tabs disallowed") || (says("tab") && says("indent")) {
        "a tab is used for indentation; YAML indents with spaces only"
    } else if says("unclosed quote") || (says("quoted scalar") && says("end of stream")) {
        "a quoted value is not closed; add the closing quote"
    } else if says("trailing content after") && says("quoted") {
        "text follows a closing quote; quote the whole value or nothing of it"
    } else if says("mapping values are not allowed") {
        "unexpected `:`; a value that contains `: ` must be quoted, and a key belongs on its own line, indented under its parent"
    } else if says("block sequence entries are not allowed") {
        "a `- item` cannot start here; put a list on the lines below its key, each item indented under it"
    } else if says("did not find expected '-'") {
        "this line is not a `- item` like the lines above it; items of one list start in the same column, and a `key: value` cannot follow them at the same level"
    } else if says("block mapping") && says("expected key") {
        "this line does not line up with the keys above it; keys of one mapping start in the same column, and a `- item` cannot follow `key: value` lines at the same level"
    } else if says("simple key expected ':'") || says("could not find expected ':'") {
        "a key is not followed by `:`; write `key: value`, or indent a continued value further than its key"
    } else if says("unexpected character") || says("cannot start any token") {
        "a plain value cannot start with this character (`@`, `` ` ``, `%`, ...); put the value in quotes"
    } else if says("unknown anchor") || says("unknown value") {
        "an alias `*name` refers to no anchor `&name` defined above it"
    } else {
        return format!("the file cannot be read as YAML ({parser})");
    };
    words.to_owned()
}

/// serde_json's message for a syntax error, put in words a metadata author can act on.
fn json_in_words(parser: &str) -> String {
    let says = |s: &str| parser.contains(s);
    let words = if says("key must be a string") {
        "expected a key in double quotes; JSON keys are quoted, and a `,` may not come before `}`"
    } else if says("trailing comma") {
        "a `,` comes before a closing `]` or `}`; JSON allows none there"
    } else if says("EOF while parsing a string") {
        "a string is not closed; add the closing `\"`"
    } else if says("EOF while parsing") {
        "the file ends before every `{` and `[` is closed"
    } else if says("trailing characters") {
        "text follows the end of the document; a file holds one JSON value"
    } else if says("expected ident") || says("expected value") {
        "expected a value: a string in double quotes, a number, true, false, null, an object or a list"
    } else {
        return format!("the file cannot be read as JSON ({parser})");
    };
    words.to_owned()
}

/// Second pass: the located tree, built from the YAML event stream without recursion.
mod events {
    use std::collections::HashMap;

    use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

    use super::{LocatedKey, MAX_NODES, RawLocated, RawNode};

    type Error = (usize, usize, String);

    enum Frame {
        Seq {
            items: Vec<RawLocated>,
            line: usize,
            column: usize,
            anchor: usize,
        },
        Map {
            entries: Vec<(LocatedKey, RawLocated)>,
            key: Option<LocatedKey>,
            line: usize,
            column: usize,
            anchor: usize,
        },
    }

    fn position(span: &Span) -> (usize, usize) {
        (span.start.line(), span.start.col() + 1)
    }

    pub(super) fn build(text: &str) -> Result<RawLocated, Error> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut anchors: HashMap<usize, RawLocated> = HashMap::new();
        let mut nodes = 0usize;
        let mut root: Option<RawLocated> = None;
        for event in Parser::new_from_str(text) {
            let (event, span) = event.map_err(|e| {
                let m = e.marker();
                let column = m.col() + 1;
                (
                    m.line(),
                    column,
                    super::syntax_error(
                        super::Format::Yaml,
                        column,
                        &super::yaml_in_words(&e.info()),
                    ),
                )
            })?;
            let (line, column) = position(&span);
            let done = match event {
                Event::Scalar(value, style, anchor, tag) => {
                    let tag_suffix = tag
                        .as_ref()
                        .and_then(|t| t.core_suffix())
                        .map(str::to_owned);
                    let node = resolve_scalar(&value, style, tag_suffix.as_deref());
                    let located = RawLocated { node, line, column };
                    if anchor != 0 {
                        anchors.insert(anchor, located.clone_tree());
                    }
                    Some(located)
                }
                Event::Alias(id) => {
                    let target = anchors.get(&id).ok_or_else(|| {
                        (
                            line,
                            column,
                            super::syntax_error(
                                super::Format::Yaml,
                                column,
                                "an alias `*name` refers to no anchor `&name` defined above it",
                            ),
                        )
                    })?;
                    // Count before copying, so an alias bomb stops before it allocates.
                    nodes += target.count();
                    if nodes > MAX_NODES {
                        return Err((
                            line,
                            column,
                            format!(
                                "invalid YAML: more than {MAX_NODES} values with aliases expanded"
                            ),
                        ));
                    }
                    let mut copy = target.clone_tree();
                    copy.line = line;
                    copy.column = column;
                    Some(copy)
                }
                Event::SequenceStart(_, anchor, _) => {
                    stack.push(Frame::Seq {
                        items: Vec::new(),
                        line,
                        column,
                        anchor,
                    });
                    None
                }
                Event::MappingStart(_, anchor, _) => {
                    stack.push(Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        line,
                        column,
                        anchor,
                    });
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                    Some(Frame::Seq {
                        items,
                        line,
                        column,
                        anchor,
                    }) => {
                        let node = RawLocated {
                            node: RawNode::Seq(items),
                            line,
                            column,
                        };
                        if anchor != 0 {
                            anchors.insert(anchor, node.clone_tree());
                        }
                        Some(node)
                    }
                    Some(Frame::Map {
                        entries,
                        line,
                        column,
                        anchor,
                        ..
                    }) => {
                        let node = RawLocated {
                            node: RawNode::Map(merge(entries)),
                            line,
                            column,
                        };
                        if anchor != 0 {
                            anchors.insert(anchor, node.clone_tree());
                        }
                        Some(node)
                    }
                    None => None,
                },
                Event::DocumentEnd if root.is_some() => break,
                _ => None,
            };
            let Some(node) = done else { continue };
            nodes += 1;
            if nodes > MAX_NODES {
                return Err((
                    line,
                    column,
                    format!("invalid YAML: more than {MAX_NODES} values with aliases expanded"),
                ));
            }
            match stack.last_mut() {
                None => root = Some(node),
                Some(Frame::Seq { items, .. }) => items.push(node),
                Some(Frame::Map { entries, key, .. }) => match key.take() {
                    Some(k) => entries.push((k, node)),
                    None => {
                        let name = match &node.node {
                            RawNode::Null => "null".to_owned(),
                            RawNode::Bool(b) => b.to_string(),
                            RawNode::Number(n) => n.to_string(),
                            RawNode::String(s) => s.clone(),
                            RawNode::Seq(_) | RawNode::Map(_) => {
                                return Err((
                                    node.line,
                                    node.column,
                                    super::syntax_error(
                                        super::Format::Yaml,
                                        node.column,
                                        "a list or mapping cannot be a mapping key",
                                    ),
                                ));
                            }
                        };
                        *key = Some(LocatedKey {
                            name,
                            line: node.line,
                            column: node.column,
                        });
                    }
                },
            }
        }
        Ok(root.unwrap_or(RawLocated {
            node: RawNode::Null,
            line: 1,
            column: 1,
        }))
    }

    /// Applies YAML merge keys (`<<: *base` or `<<: [*a, *b]`): merged entries never override explicit ones.
    fn merge(entries: Vec<(LocatedKey, RawLocated)>) -> Vec<(LocatedKey, RawLocated)> {
        if !entries.iter().any(|(k, _)| k.name == "<<") {
            return entries;
        }
        let mut out: Vec<(LocatedKey, RawLocated)> = Vec::new();
        let mut merged: Vec<(LocatedKey, RawLocated)> = Vec::new();
        for (k, v) in entries {
            if k.name != "<<" {
                out.push((k, v));
                continue;
            }
            match v.node {
                RawNode::Map(m) => merged.extend(m),
                RawNode::Seq(items) => {
                    for item in items {
                        if let RawNode::Map(m) = item.node {
                            merged.extend(m);
                        }
                    }
                }
                other => out.push((
                    k,
                    RawLocated {
                        node: other,
                        line: v.line,
                        column: v.column,
                    },
                )),
            }
        }
        for (k, v) in merged {
            if !out.iter().any(|(o, _)| o.name == k.name) {
                out.push((k, v));
            }
        }
        out
    }

    /// YAML 1.2 core schema resolution of one scalar.
    fn resolve_scalar(value: &str, style: ScalarStyle, tag: Option<&str>) -> RawNode {
        match tag {
            Some("str") => return RawNode::String(value.to_owned()),
            Some("null") => return RawNode::Null,
            _ => {}
        }
        if style != ScalarStyle::Plain && tag.is_none() {
            return RawNode::String(value.to_owned());
        }
        match value {
            "" | "~" | "null" | "Null" | "NULL" => return RawNode::Null,
            "true" | "True" | "TRUE" => return RawNode::Bool(true),
            "false" | "False" | "FALSE" => return RawNode::Bool(false),
            _ => {}
        }
        if let Some(n) = parse_int(value) {
            return RawNode::Number(n);
        }
        if is_float(value)
            && let Some(n) = value
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
        {
            return RawNode::Number(n);
        }
        RawNode::String(value.to_owned())
    }

    fn parse_int(value: &str) -> Option<serde_json::Number> {
        let (negative, digits) = match value.as_bytes().first() {
            Some(b'-') => (true, value.get(1..)?),
            Some(b'+') => (false, value.get(1..)?),
            _ => (false, value),
        };
        let (radix, digits) = if let Some(h) = digits.strip_prefix("0x") {
            (16, h)
        } else if let Some(o) = digits.strip_prefix("0o") {
            (8, o)
        } else {
            (10, digits)
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        let magnitude = u64::from_str_radix(digits, radix).ok()?;
        if negative {
            let v = i64::try_from(magnitude).ok()?;
            Some((-v).into())
        } else {
            Some(magnitude.into())
        }
    }

    fn is_float(value: &str) -> bool {
        let body = value.strip_prefix(['-', '+']).unwrap_or(value);
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let mantissa_ok = {
            let mut parts = mantissa.splitn(2, '.');
            let int = parts.next().unwrap_or("");
            let frac = parts.next();
            let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
            match frac {
                Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
                None => !int.is_empty() && digits(int),
            }
        };
        let exponent_ok = exponent.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
        });
        mantissa_ok && exponent_ok
    }

    impl RawLocated {
        fn clone_tree(&self) -> RawLocated {
            let node = match &self.node {
                RawNode::Null => RawNode::Null,
                RawNode::Bool(b) => RawNode::Bool(*b),
                RawNode::Number(n) => RawNode::Number(n.clone()),
                RawNode::String(s) => RawNode::String(s.clone()),
                RawNode::Seq(items) => RawNode::Seq(items.iter().map(Self::clone_tree).collect()),
                RawNode::Map(entries) => RawNode::Map(
                    entries
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone_tree()))
                        .collect(),
                ),
            };
            RawLocated {
                node,
                line: self.line,
                column: self.column,
            }
        }

        fn count(&self) -> usize {
            1 + match &self.node {
                RawNode::Seq(items) => items.iter().map(Self::count).sum(),
                RawNode::Map(entries) => entries.iter().map(|(_, v)| v.count()).sum(),
                _ => 0,
            }
        }
    }
}

/// A small JSON reader that records positions. serde_json checks the syntax first (its errors carry
/// line and column); this reader then builds the located tree, using serde_json for strings and numbers.
mod json {
    use super::{MAX_DEPTH, RawLocated, RawNode};
    use crate::yaml::LocatedKey;

    type Error = (usize, usize, String);

    pub(super) fn parse(text: &str) -> Result<RawLocated, Error> {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            // serde_json's own message ends with "at line X column Y"; the diagnostic carries those.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            return Err((
                e.line(),
                e.column(),
                super::syntax_error(super::Format::Json, e.column(), &super::json_in_words(&msg)),
            ));
        }
        let mut reader = Reader {
            text,
            pos: 0,
            line_starts: line_starts(text),
        };
        reader.skip_ws();
        let value = reader.value(0)?;
        Ok(value)
    }

    fn line_starts(text: &str) -> Vec<usize> {
        std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect()
    }

    struct Reader<'a> {
        text: &'a str,
        pos: usize,
        line_starts: Vec<usize>,
    }

    impl Reader<'_> {
        fn position(&self, offset: usize) -> (usize, usize) {
            let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
            let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
            let column = self
                .text
                .get(start..offset)
                .map_or(0, |s| s.chars().count())
                + 1;
            (line, column)
        }

        fn fail(&self, msg: &str) -> Error {
            let (line, column) = self.position(self.pos);
            // The nesting limit is not a syntax error; say so.
            let message = if msg.starts_with("nesting") {
                format!("invalid JSON: {msg}")
            } else {
                super::syntax_error(super::Format::Json, column, msg)
            };
            (line, column, message)
        }

        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.pos).copied()
        }

        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }

        fn expect(&mut self, byte: u8) -> Result<(), Error> {
            self.skip_ws();
            if self.peek() == Some(byte) {
                self.pos += 1;
                Ok(())
            } else {
                Err(self.fail(&format!("expected `{}`", byte as char)))
            }
        }

        fn value(&mut self, depth: usize) -> Result<RawLocated, Error> {
            self.skip_ws();
            let (line, column) = self.position(self.pos);
            let node = match self.peek() {
                Some(b'{') => {
                    if depth >= MAX_DEPTH {
                        return Err(self.fail(&format!(
                            "nesting is deeper than {MAX_DEPTH} levels; metadata files may nest at most {MAX_DEPTH} mappings and lists"
                        )));
                    }
                    self.pos += 1;
                    let mut entries = Vec::new();
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        loop {
                            self.skip_ws();
                            let (kl, kc) = self.position(self.pos);
                            let name = self.string()?;
                            self.expect(b':')?;
                            let value = self.value(depth + 1)?;
                            entries.push((
                                LocatedKey {
                                    name,
                                    line: kl,
                                    column: kc,
                                },
                                value,
                            ));
                            self.skip_ws();
                            match self.peek() {
                                Some(b',') => self.pos += 1,
                                Some(b'}') => {
                                    self.pos += 1;
                                    break;
                                }
                                _ => return Err(self.fail("expected `,` or `}`")),
                            }
                        }
                    }
                    RawNode::Map(entries)
                }
                Some(b'[') => {
                    if depth >= MAX_DEPTH {
                        return Err(self.fail(&format!(
                            "nesting is deeper than {MAX_DEPTH} levels; metadata files may nest at most {MAX_DEPTH} mappings and lists"
                        )));
                    }
                    self.pos += 1;
                    let mut items = Vec::new();
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        loop {
                            items.push(self.value(depth + 1)?);
                            self.skip_ws();
                            match self.peek() {
                                Some(b',') => self.pos += 1,
                                Some(b']') => {
                                    self.pos += 1;
                                    break;
                                }
                                _ => return Err(self.fail("expected `,` or `]`")),
                            }
                        }
                    }
                    RawNode::Seq(items)
                }
                Some(b'"') => RawNode::String(self.string()?),
                Some(b't') => self.literal("true", RawNode::Bool(true))?,
                Some(b'f') => self.literal("false", RawNode::Bool(false))?,
                Some(b'n') => self.literal("null", RawNode::Null)?,
                Some(b'-' | b'0'..=b'9') => {
                    let start = self.pos;
                    while matches!(
                        self.peek(),
                        Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                    ) {
                        self.pos += 1;
                    }
                    let slice = self.text.get(start..self.pos).unwrap_or("");
                    let n = serde_json::from_str::<serde_json::Number>(slice)
                        .map_err(|_| self.fail(&format!("`{slice}` is not a number")))?;
                    RawNode::Number(n)
                }
                _ => return Err(self.fail("expected a value")),
            };
            Ok(RawLocated { node, line, column })
        }

        fn literal(&mut self, word: &str, node: RawNode) -> Result<RawNode, Error> {
            if self
                .text
                .get(self.pos..)
                .is_some_and(|rest| rest.starts_with(word))
            {
                self.pos += word.len();
                Ok(node)
            } else {
                Err(self.fail(&format!("expected `{word}`")))
            }
        }

        fn string(&mut self) -> Result<String, Error> {
            if self.peek() != Some(b'"') {
                return Err(self.fail("expected a string in double quotes"));
            }
            let start = self.pos;
            self.pos += 1;
            loop {
                match self.peek() {
                    Some(b'\\') => self.pos += 2,
                    Some(b'"') => {
                        self.pos += 1;
                        break;
                    }
                    Some(_) => self.pos += 1,
                    None => return Err(self.fail("unterminated string")),
                }
            }
            let slice = self.text.get(start..self.pos).unwrap_or("");
            serde_json::from_str::<String>(slice).map_err(|e| self.fail(&e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Parsed {
        parse("t.yml", text, Format::Yaml)
    }

    #[test]
    fn positions_are_one_based() {
        let p = yaml("name: a\nfields:\n  x:\n    type: text\n");
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let root = p.root.unwrap();
        let (k, v) = root.entry("fields").unwrap();
        assert_eq!((k.line, k.column), (2, 1));
        let ty = v.get("x").unwrap().get("type").unwrap();
        assert_eq!((ty.line, ty.column), (4, 11));
        assert_eq!(ty.as_str(), Some("text"));
    }

    #[test]
    fn json_positions_and_order() {
        let p = parse(
            "t.json",
            "{\n  \"b\": 1,\n  \"a\": [true, null, \"x\\n\"]\n}",
            Format::Json,
        );
        assert!(p.diagnostics.is_empty());
        let root = p.root.unwrap();
        let (k, v) = root.entry("a").unwrap();
        assert_eq!((k.line, k.column), (3, 3));
        assert_eq!((v.line, v.column), (3, 8));
        assert_eq!(
            root.to_json().to_string(),
            r#"{"b":1,"a":[true,null,"x\n"]}"#
        );
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        let p = yaml("a: 1\nb: 2\na: 3\n");
        assert_eq!(p.diagnostics.len(), 1);
        assert_eq!(p.diagnostics[0].line, 3);
        assert!(
            p.diagnostics[0]
                .message
                .contains("first defined at line 1, again at line 3")
        );
        assert_eq!(p.root.unwrap().get("a").unwrap().as_u64(), Some(1));
        let j = parse("t.json", r#"{"x": {"a": 1, "a": 2}}"#, Format::Json);
        assert_eq!(j.diagnostics[0].path, "x");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let p = yaml("name: a\nfields:\n  x: [1, 2\n");
        assert!(p.root.is_none());
        assert!(p.diagnostics[0].line >= 3, "{:?}", p.diagnostics);
        let j = parse("t.json", "{\n \"a\": 1,\n}", Format::Json);
        assert_eq!(j.diagnostics[0].line, 3);
        assert!(j.diagnostics[0].message.starts_with("JSON syntax error"));
    }

    #[test]
    fn limits() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(yaml(&deep).root.is_none());
        assert!(parse("t.json", &deep, Format::Json).root.is_none());
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
        assert!(yaml(bomb).root.is_none());
        let big = "a: ".to_owned() + &"x".repeat(MAX_DOCUMENT_BYTES);
        assert!(yaml(&big).diagnostics[0].message.contains("at most"));
    }
}
