//! Small helpers: record ids, timestamps in the wire format, and URL-safe base64 for cursors.

use chrono::{DateTime, SecondsFormat, Utc};

const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Lowercase Crockford base32: digits before letters, no `i l o u`, so ids sort the same way
/// byte-wise (SQLite, PostgreSQL `C`) and under the usual locale collations (PostgreSQL `en_US`).
const SORTABLE: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Last (millisecond, sequence) handed out, so ids made in the same millisecond still ascend.
static LAST: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));

/// A new record id: 20 lowercase base32 characters encoding a 48-bit millisecond timestamp, a
/// 16-bit in-process sequence and 36 random bits.
///
/// Ids ascend with creation time within a process (createMany keeps its order) and stay unguessable
/// enough to be used in URLs; the default sort of a list (`created_at`, then `id`) relies on this.
pub(crate) fn new_id() -> String {
    let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let (ms, seq) = {
        // A poisoned lock only means another thread panicked mid-update; the pair is still usable.
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let next = if now_ms > last.0 {
            (now_ms, 0)
        } else if last.1 < 0xffff {
            (last.0, last.1 + 1)
        } else {
            (last.0 + 1, 0)
        };
        *last = next;
        next
    };
    let random = u128::from(uuid::Uuid::new_v4().as_u128() as u64 & 0xf_ffff_ffff);
    let value: u128 = (u128::from(ms & 0xffff_ffff_ffff) << 52) | (u128::from(seq) << 36) | random;
    let mut out = String::with_capacity(20);
    for i in (0..20).rev() {
        let idx = ((value >> (i * 5)) & 0x1f) as usize;
        out.push(SORTABLE[idx] as char);
    }
    out
}

/// Formats a timestamp as the wire does: RFC 3339, UTC, milliseconds, `Z`.
pub(crate) fn format_ts(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time, truncated to milliseconds so what is stored equals what is returned.
pub(crate) fn now() -> DateTime<Utc> {
    let n = Utc::now();
    DateTime::from_timestamp_millis(n.timestamp_millis()).unwrap_or(n)
}

/// Encodes bytes as unpadded URL-safe base64.
pub(crate) fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(URL_SAFE[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

/// Decodes unpadded (or padded) URL-safe base64; `None` when the text is not base64.
pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = URL_SAFE.iter().position(|x| *x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "[\"x\",1]"] {
            assert_eq!(b64_decode(&b64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
    }

    #[test]
    fn ids_are_20_sortable_chars_and_ascend() {
        let ids: Vec<String> = (0..5000).map(|_| new_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 20);
            assert!(id.bytes().all(|c| SORTABLE.contains(&c)));
        }
        // Many ids share a millisecond here; the sequence keeps them strictly ascending.
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
