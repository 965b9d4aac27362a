//! Robustness: truncated and garbled versions of every valid fixture never panic, and always either
//! load or explain why not.

use objectos_spec::audit::Auditor;
use objectos_spec::yaml::{Format, parse};
use objectos_spec::{load_manifest, load_object};

use crate::{files_under, read};

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn variants(text: &str, rng: &mut Rng) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    // Every truncation point on a coarse grid, plus each line boundary.
    let step = (chars.len() / 25).max(1);
    for cut in (0..chars.len()).step_by(step) {
        out.push(chars[..cut].iter().collect());
    }
    for (i, _) in text.match_indices('\n') {
        out.push(text[..i].to_owned());
    }
    // Random edits: replace, delete or insert YAML/JSON punctuation.
    const PUNCT: &[char] = &[
        ':', '-', '[', ']', '{', '}', '"', '\'', '\t', '\n', ' ', '&', '*', '!', '#', '|', '>',
        ',', '%', '@', '`', '\\', 'é',
    ];
    for _ in 0..30 {
        let mut c = chars.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(c.len() + 1);
            let p = PUNCT[rng.below(PUNCT.len())];
            match rng.below(3) {
                0 if at < c.len() => c[at] = p,
                1 if at < c.len() => {
                    c.remove(at);
                }
                _ => c.insert(at, p),
            }
        }
        out.push(c.into_iter().collect());
    }
    // Lines shuffled and duplicated.
    let lines: Vec<&str> = text.lines().collect();
    for _ in 0..5 {
        let mut l = lines.clone();
        for _ in 0..3 {
            let (a, b) = (rng.below(l.len()), rng.below(l.len()));
            if a < l.len() && b < l.len() {
                l.swap(a, b);
                l.push(l[a]);
            }
        }
        out.push(l.join("\n"));
    }
    out
}

#[test]
fn garbled_fixtures_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    for rel in files_under("valid")
        .iter()
        .chain(files_under("invalid").iter())
    {
        // The alias bomb costs half a second per variant in debug builds; `hostile_inputs_are_refused_cleanly`
        // and its snapshot cover it.
        if rel.contains("alias_bomb") {
            continue;
        }
        let text = read(rel);
        let format = Format::from_path(rel);
        for v in variants(&text, &mut rng) {
            let parsed = parse(rel, &v, format);
            assert!(
                parsed.root.is_some() || !parsed.diagnostics.is_empty(),
                "{rel}: no tree and no reason"
            );
            let loaded = if rel.contains("manifest") || rel.contains("objectstack") {
                let l = load_manifest(rel, &v, format);
                (l.value.is_some(), l.diagnostics)
            } else {
                let l = load_object(rel, &v, format);
                (l.value.is_some(), l.diagnostics)
            };
            // No value means at least one error explains why.
            assert!(
                loaded.0 || loaded.1.iter().any(|d| d.is_error()),
                "{rel}: rejected without an error:\n{v}"
            );
            for d in &loaded.1 {
                assert!(
                    !d.message.is_empty() && !d.message.contains('\n'),
                    "{rel}: bad message {d:?}"
                );
            }
            let mut auditor = Auditor::new();
            auditor.add_file(rel, &v);
            auditor.finish();
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} variants");
}

#[test]
fn hostile_inputs_are_refused_cleanly() {
    let deep_map: String = (0..200)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    let cases = [
        "[".repeat(100_000),
        "{".repeat(100_000),
        deep_map,
        "a: *unknown\n".to_owned(),
        "---\nname: a\n---\nname: b\n".to_owned(),
        "\u{0}\u{1}\u{2}".to_owned(),
        "name: \"unterminated\n".to_owned(),
        "? [complex, key]\n: value\n".to_owned(),
        "name: !!binary aGVsbG8=\nfields: {}\n".to_owned(),
        "name: .nan\nfields: {}\n".to_owned(),
        "name: 99999999999999999999999\nfields: {}\n".to_owned(),
    ];
    for (i, text) in cases.iter().enumerate() {
        for format in [Format::Yaml, Format::Json] {
            let loaded = load_object(&format!("case{i}.object.yml"), text, format);
            assert!(loaded.value.is_none(), "case {i} ({format:?}) loaded");
            assert!(loaded.error_count() > 0, "case {i} ({format:?}): no error");
        }
    }
}
