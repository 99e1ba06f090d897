//! Client-supplied text made safe for log lines.

use std::fmt::Write as _;

/// At most this many bytes of a client-supplied string go into a log line.
const LOG_TEXT_MAX: usize = 64;

/// Client-supplied text made safe for a log line: control characters, non-ASCII bytes, quotes
/// and backslashes are escaped (`\n`, `\x1b`, `\xc3`, ...), so a client cannot forge log lines
/// or send terminal escapes; anything past [`LOG_TEXT_MAX`] bytes is cut and its length noted.
/// Never pass a secret (token, password, access key) here: those are never logged.
pub(crate) fn escape_client_text(bytes: &[u8]) -> String {
    let cut = bytes.len().min(LOG_TEXT_MAX);
    let mut s = bytes[..cut].escape_ascii().to_string();
    if bytes.len() > cut {
        let _ = write!(s, "...({} bytes)", bytes.len());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::escape_client_text;

    #[test]
    fn client_text_is_escaped_and_cut() {
        assert_eq!(escape_client_text(b"default"), "default");
        assert_eq!(
            escape_client_text(b"a6f1c2d3-0000-4e5f-8a9b-123456789abc"),
            "a6f1c2d3-0000-4e5f-8a9b-123456789abc"
        );
        // No newline, carriage return or escape character reaches the log line.
        let forged = escape_client_text(b"x\r\n2025-01-01T00:00:00Z  INFO AUTH accepted\x1b[2J");
        assert_eq!(
            forged,
            "x\\r\\n2025-01-01T00:00:00Z  INFO AUTH accepted\\x1b[2J"
        );
        assert!(!forged.chars().any(|c| c.is_control()));
        assert_eq!(escape_client_text(b"\"q\" \\"), "\\\"q\\\" \\\\");
        assert_eq!(escape_client_text(b"\x00\xff\t"), "\\x00\\xff\\t");
        // Non-ASCII (even valid UTF-8, such as a right-to-left override) is escaped bytewise.
        assert_eq!(
            escape_client_text("\u{202e}é".as_bytes()),
            "\\xe2\\x80\\xae\\xc3\\xa9"
        );
        // Long input is cut after 64 bytes, with its length noted.
        let long = vec![b'a'; 100];
        assert_eq!(
            escape_client_text(&long),
            format!("{}...(100 bytes)", "a".repeat(64))
        );
        assert_eq!(escape_client_text(&[b'\n'; 64]), "\\n".repeat(64));
    }
}
