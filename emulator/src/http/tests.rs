//! Unit tests of the identity endpoints' helpers: escaped log lines and AAD error timestamps.

use std::io;
use std::sync::{Arc, Mutex};

use super::managed_identity::{log_unknown_identity, loggable_selector};
use super::token_endpoint::timestamp;
use crate::identity::MiSelector;

/// A log destination that keeps what is written to it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The log lines `f` writes, as the emulator's subscriber formats them.
fn logged(f: impl FnOnce()) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = captured.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    String::from_utf8(bytes).expect("UTF-8 log")
}

#[test]
fn client_text_in_log_lines_is_escaped() {
    let forged = "x\r\n2025-01-01T00:00:00Z  INFO managed identity token issued\x1b[2J";
    for selector in [
        MiSelector::Client(forged),
        MiSelector::Object(forged),
        MiSelector::Resource(forged),
    ] {
        let log = logged(|| log_unknown_identity(Some(selector)));
        assert!(log.contains("unknown identity"), "{log}");
        assert!(
            log.contains(r"=x\r\n2025-01-01T00:00:00Z  INFO managed identity token issued\x1b[2J"),
            "{log}"
        );
        // One line, and no control character but its end.
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(
            !log.trim_end_matches('\n').chars().any(char::is_control),
            "{log:?}"
        );
    }
    let long = "a".repeat(1000);
    let shown = loggable_selector(Some(MiSelector::Client(&long)));
    assert!(shown.len() < 100, "{shown}");
}

#[test]
fn timestamp_formats_civil_dates() {
    assert_eq!(timestamp(0), "1970-01-01 00:00:00Z");
    assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00Z");
    assert_eq!(timestamp(1_700_000_000), "2023-11-14 22:13:20Z");
}
