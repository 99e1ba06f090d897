//! An incremental parser for the client-to-server half of the Redis protocol.
//!
//! It recognises command boundaries in RESP multibulk requests (`*N\r\n$L\r\n...`) and inline
//! requests (`PING\r\n`), passes ordinary commands through as raw byte ranges (streaming large
//! arguments without buffering them), and hands back whole commands only for the few names the
//! gate needs to see ([`Intercept`]). Malformed input produces a [`Poison`]: bytes that make
//! redis-server itself reply `-ERR Protocol error: ...` at the right place in the reply stream and
//! close the connection.
//!
//! [`RequestParser`] (in `parser.rs`) does the parsing; `redis_strings.rs` holds the
//! redis-server string routines it reproduces.

mod parser;
mod redis_strings;
#[cfg(test)]
mod tests;

use bytes::Bytes;

pub(crate) use parser::RequestParser;
pub(crate) use redis_strings::string2ll;

/// Longest inline request or header line redis-server accepts without a newline.
pub(crate) const INLINE_MAX: usize = 64 * 1024;
/// Command names longer than this are never intercepted.
const NAME_MAX: u64 = 16;

/// Commands the gate inspects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intercept {
    Auth,
    Hello,
    Reset,
    Subscribe,
    PSubscribe,
    SSubscribe,
    Unsubscribe,
    PUnsubscribe,
    SUnsubscribe,
}

impl Intercept {
    fn from_name(name: &[u8]) -> Option<Self> {
        const NAMES: [(&[u8], Intercept); 9] = [
            (b"AUTH", Intercept::Auth),
            (b"HELLO", Intercept::Hello),
            (b"RESET", Intercept::Reset),
            (b"SUBSCRIBE", Intercept::Subscribe),
            (b"PSUBSCRIBE", Intercept::PSubscribe),
            (b"SSUBSCRIBE", Intercept::SSubscribe),
            (b"UNSUBSCRIBE", Intercept::Unsubscribe),
            (b"PUNSUBSCRIBE", Intercept::PUnsubscribe),
            (b"SUNSUBSCRIBE", Intercept::SUnsubscribe),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, i)| *i)
    }

    /// The canonical command name.
    pub(crate) fn name(self) -> &'static [u8] {
        match self {
            Intercept::Auth => b"AUTH",
            Intercept::Hello => b"HELLO",
            Intercept::Reset => b"RESET",
            Intercept::Subscribe => b"SUBSCRIBE",
            Intercept::PSubscribe => b"PSUBSCRIBE",
            Intercept::SSubscribe => b"SSUBSCRIBE",
            Intercept::Unsubscribe => b"UNSUBSCRIBE",
            Intercept::PUnsubscribe => b"PUNSUBSCRIBE",
            Intercept::SUnsubscribe => b"SUNSUBSCRIBE",
        }
    }
}

/// A whole intercepted command (arguments exclude the command name).
#[derive(Debug)]
pub(crate) struct Command {
    pub(crate) kind: Intercept,
    pub(crate) args: Vec<Bytes>,
}

/// Input that redis-server would refuse: what to send upstream instead, and why.
#[derive(Debug)]
pub(crate) struct Poison {
    pub(crate) bytes: Vec<u8>,
    pub(crate) reason: &'static str,
}

/// One step of parsing.
#[derive(Debug)]
pub(crate) enum Item {
    /// Forward the next `n` input bytes unchanged.
    Forward(usize),
    /// An intercepted command, complete; it spans the next `n` input bytes.
    Command(Command, usize),
    /// Malformed input; parsing has stopped for good.
    Poison(Poison),
}

/// Limits applied by the parser.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest bulk argument accepted (redis-server: `proto-max-bulk-len`, 512 MiB).
    pub(crate) max_bulk: u64,
    /// Largest intercepted command that is buffered whole.
    pub(crate) max_intercepted: usize,
}

/// Serialises a command as a RESP multibulk request.
pub(crate) fn encode_command<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let parts: Vec<&[u8]> = parts.into_iter().collect();
    let mut out = Vec::with_capacity(16 + parts.iter().map(|p| p.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}
