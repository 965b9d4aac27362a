//! The MIME type of a file, read from its first bytes (never taken from the client): a table of
//! the common signatures, then UTF-8 text, else `application/octet-stream`.

/// Bytes needed to recognise every signature of [`SIGNATURES`] (the `ftyp` box and the
/// `WEBP`/`WAVE` tags sit a few bytes in).
pub const SNIFF_LEN: usize = 512;

/// `(offset, magic, mime)`; the first match wins, so longer signatures come before their
/// prefixes.
const SIGNATURES: &[(usize, &[u8], &str)] = &[
    (0, b"%PDF-", "application/pdf"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"\x00\x00\x01\x00", "image/x-icon"),
    (4, b"ftypavif", "image/avif"),
    (4, b"ftypheic", "image/heic"),
    (4, b"ftypqt", "video/quicktime"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\xff\xfb", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (8, b"WAVE", "audio/wav"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "application/vnd.rar"),
    (
        0,
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "application/x-ole-storage",
    ),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"MZ", "application/x-msdownload"),
    (0, b"wOFF", "font/woff"),
    (0, b"wOF2", "font/woff2"),
];

/// Office formats are ZIP files; their first entry names them.
const ZIP_KINDS: &[(&[u8], &str)] = &[
    (
        b"word/",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (
        b"xl/",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    (
        b"ppt/",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
];

/// The MIME type of content starting with `head` (at most [`SNIFF_LEN`] bytes are looked at).
/// `declared` (the client's claim) is used only to name a text file more precisely
/// (`text/csv`, `application/json`) when the content is text.
pub fn sniff(head: &[u8], declared: Option<&str>) -> String {
    let head = &head[..head.len().min(SNIFF_LEN)];
    for (offset, magic, mime) in SIGNATURES {
        if head.len() >= offset + magic.len() && &head[*offset..offset + magic.len()] == *magic {
            if *mime == "application/zip" {
                return zip_kind(head).to_owned();
            }
            return (*mime).to_owned();
        }
    }
    if is_text(head) {
        let trimmed = head.trim_ascii_start();
        if trimmed.starts_with(b"<svg")
            || (trimmed.starts_with(b"<?xml") && contains(head, b"<svg"))
        {
            return "image/svg+xml".to_owned();
        }
        return match declared.map(|d| d.trim().to_ascii_lowercase()) {
            Some(d)
                if d.starts_with("text/")
                    && !d.contains("html")
                    && d.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
            {
                d
            }
            Some(d) if d == "application/json" => d,
            _ => "text/plain".to_owned(),
        };
    }
    "application/octet-stream".to_owned()
}

fn zip_kind(head: &[u8]) -> &'static str {
    // The first local file header's name starts at byte 30.
    let name = head.get(30..).unwrap_or_default();
    ZIP_KINDS
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix) || contains(head, prefix))
        .map_or("application/zip", |(_, mime)| mime)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// UTF-8 without NUL or other control bytes than whitespace; a multi-byte character cut at the
/// end of the sample does not count against it.
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => match std::str::from_utf8(&head[..e.valid_up_to()]) {
            Ok(s) => s,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn content_decides_not_the_claim() {
        assert_eq!(
            sniff(b"%PDF-1.7\n...", Some("image/png")),
            "application/pdf"
        );
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0", None), "image/png");
        assert_eq!(sniff(b"hello world", Some("text/plain")), "text/plain");
        assert_eq!(sniff(b"a,b\n1,2\n", Some("text/csv")), "text/csv");
        assert_eq!(sniff(b"hello", Some("application/pdf")), "text/plain");
        assert_eq!(sniff(b"<html>", Some("text/html")), "text/plain");
        assert_eq!(
            sniff(b"\x00\x01\x02\x03", Some("text/plain")),
            "application/octet-stream"
        );
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ", None), "image/webp");
        assert_eq!(sniff(b"<svg xmlns=\"\">", None), "image/svg+xml");
        let mut docx = b"PK\x03\x04".to_vec();
        docx.extend_from_slice(&[0; 26]);
        docx.extend_from_slice(b"word/document.xml");
        assert!(sniff(&docx, None).contains("wordprocessingml"));
        // A multi-byte character cut by the sample's end is still text.
        assert_eq!(sniff("é".as_bytes().get(..1).unwrap(), None), "text/plain");
    }
}
