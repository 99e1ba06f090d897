//! An incremental parser for the client-to-server half of the Redis protocol.
//!
//! It recognises command boundaries in RESP multibulk requests (`*N\r\n$L\r\n...`) and inline
//! requests (`PING\r\n`), passes ordinary commands through as raw byte ranges (streaming large
//! arguments without buffering them), and hands back whole commands only for the few names the
//! gate needs to see ([`Intercept`]). Malformed input produces a [`Poison`]: bytes that make
//! redis-server itself reply `-ERR Protocol error: ...` at the right place in the reply stream and
//! close the connection.

use bytes::Bytes;

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

#[derive(Debug, Clone, Copy)]
enum State {
    /// At a command boundary.
    Boundary,
    /// Inside a multibulk request, expecting a `$len` header; `remaining` arguments left.
    ArgHeader { remaining: u64 },
    /// Inside an argument's payload (including its trailing CRLF).
    Bulk { bytes: u64, remaining: u64 },
    /// An inline request grew past the inline limit: everything is forwarded raw and
    /// redis-server will reject it.
    Raw,
    /// A poison was emitted; nothing more is parsed.
    Dead,
}

/// Limits applied by the parser.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest bulk argument accepted (redis-server: `proto-max-bulk-len`, 512 MiB).
    pub(crate) max_bulk: u64,
    /// Largest intercepted command that is buffered whole.
    pub(crate) max_intercepted: usize,
}

/// The parser; one per connection.
#[derive(Debug)]
pub(crate) struct RequestParser {
    state: State,
    limits: Limits,
}

enum Header {
    Incomplete,
    TooLong,
    /// (first byte, parsed number or None, total header length incl. CRLF)
    Line(u8, Option<i64>, usize),
}

/// Parses a header line at `buf[at..]` the way redis-server does: up to the first `\r`, which
/// must be followed by at least one more byte (the `\n`, not checked).
fn header(buf: &[u8], at: usize) -> Header {
    let rest = &buf[at..];
    match rest.iter().position(|&b| b == b'\r') {
        None => {
            if rest.len() > INLINE_MAX {
                Header::TooLong
            } else {
                Header::Incomplete
            }
        }
        Some(cr) if cr + 1 >= rest.len() => Header::Incomplete,
        Some(cr) => {
            let first = rest.first().copied().unwrap_or(b'\r');
            let num = if cr >= 1 {
                string2ll(&rest[1..cr])
            } else {
                None
            };
            Header::Line(first, num, cr + 2)
        }
    }
}

/// Strict integer parsing as redis-server's `string2ll`: optional `-`, digits, no leading zeros.
pub(crate) fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        v = if neg {
            v.checked_mul(10)?.checked_sub(digit)?
        } else {
            v.checked_mul(10)?.checked_add(digit)?
        };
    }
    Some(v)
}

const POISON_MULTIBULK: &[u8] = b"*x\r\n";
const POISON_BULK: &[u8] = b"$x\r\n";

impl RequestParser {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            state: State::Boundary,
            limits,
        }
    }

    /// Poison for an argument-level error. `at_boundary`: the `*N` header was not forwarded.
    fn poison_arg(&mut self, at_boundary: bool, tail: &[u8], reason: &'static str) -> Item {
        self.state = State::Dead;
        let mut bytes = Vec::with_capacity(8);
        if at_boundary {
            bytes.extend_from_slice(b"*1\r\n");
        }
        bytes.extend_from_slice(tail);
        Item::Poison(Poison { bytes, reason })
    }

    fn poison_multibulk(&mut self, reason: &'static str) -> Item {
        self.state = State::Dead;
        Item::Poison(Poison {
            bytes: POISON_MULTIBULK.to_vec(),
            reason,
        })
    }

    fn valid_bulk_len(&self, n: Option<i64>) -> Option<u64> {
        let n = u64::try_from(n?).ok()?;
        (n <= self.limits.max_bulk).then_some(n)
    }

    /// Returns the next item of `buf` (the unconsumed input), or `None` when more input is
    /// needed. The caller consumes the bytes a `Forward` or `Command` spans before calling
    /// again.
    pub(crate) fn next(&mut self, buf: &[u8]) -> Option<Item> {
        loop {
            match self.state {
                State::Dead => return None,
                State::Raw => {
                    if buf.is_empty() {
                        return None;
                    }
                    return Some(Item::Forward(buf.len()));
                }
                State::Bulk { bytes, remaining } => {
                    if buf.is_empty() {
                        return None;
                    }
                    let n = usize::try_from(bytes).unwrap_or(usize::MAX).min(buf.len());
                    let left = bytes - n as u64;
                    self.state = if left == 0 {
                        State::ArgHeader { remaining }
                    } else {
                        State::Bulk {
                            bytes: left,
                            remaining,
                        }
                    };
                    return Some(Item::Forward(n));
                }
                State::ArgHeader { remaining: 0 } => self.state = State::Boundary,
                State::ArgHeader { remaining } => match header(buf, 0) {
                    Header::Incomplete => return None,
                    Header::TooLong => {
                        return Some(self.poison_arg(
                            false,
                            POISON_BULK,
                            "too big bulk count string",
                        ));
                    }
                    Header::Line(first, num, len) => {
                        if first != b'$' {
                            return Some(self.poison_arg(
                                false,
                                &[first, b'\r', b'\n'],
                                "expected '$'",
                            ));
                        }
                        let Some(n) = self.valid_bulk_len(num) else {
                            return Some(self.poison_arg(
                                false,
                                POISON_BULK,
                                "invalid bulk length",
                            ));
                        };
                        self.state = State::Bulk {
                            bytes: n.saturating_add(2),
                            remaining: remaining - 1,
                        };
                        return Some(Item::Forward(len));
                    }
                },
                State::Boundary => {
                    let first = *buf.first()?;
                    return if first == b'*' {
                        self.multibulk(buf)
                    } else {
                        self.inline(buf)
                    };
                }
            }
        }
    }

    fn multibulk(&mut self, buf: &[u8]) -> Option<Item> {
        let (count, hlen) = match header(buf, 0) {
            Header::Incomplete => return None,
            Header::TooLong => return Some(self.poison_multibulk("too big mbulk count string")),
            Header::Line(_, num, len) => match num {
                Some(n) if n <= i64::from(i32::MAX) => (n, len),
                _ => return Some(self.poison_multibulk("invalid multibulk length")),
            },
        };
        if count <= 0 {
            // redis-server skips an empty multibulk request.
            return Some(Item::Forward(hlen));
        }
        let count = count.unsigned_abs();
        // First argument: the command name.
        let (name_len, name_hlen) = match header(buf, hlen) {
            Header::Incomplete => return None,
            Header::TooLong => {
                return Some(self.poison_arg(true, POISON_BULK, "too big bulk count string"));
            }
            Header::Line(first, num, len) => {
                if first != b'$' {
                    return Some(self.poison_arg(true, &[first, b'\r', b'\n'], "expected '$'"));
                }
                match self.valid_bulk_len(num) {
                    Some(n) => (n, len),
                    None => {
                        return Some(self.poison_arg(true, POISON_BULK, "invalid bulk length"));
                    }
                }
            }
        };
        let data_start = hlen + name_hlen;
        if name_len > NAME_MAX {
            self.state = State::Bulk {
                bytes: name_len.saturating_add(2),
                remaining: count - 1,
            };
            return Some(Item::Forward(data_start));
        }
        let name_end = data_start + name_len as usize;
        if buf.len() < name_end + 2 {
            return None;
        }
        let Some(kind) = Intercept::from_name(&buf[data_start..name_end]) else {
            self.state = State::ArgHeader {
                remaining: count - 1,
            };
            return Some(Item::Forward(name_end + 2));
        };
        // Intercepted: the whole command must be buffered.
        let mut pos = name_end + 2;
        let mut spans = Vec::new();
        for _ in 1..count {
            match header(buf, pos) {
                Header::Incomplete => return self.wait_intercepted(buf),
                Header::TooLong => {
                    return Some(self.poison_arg(true, POISON_BULK, "too big bulk count string"));
                }
                Header::Line(first, num, len) => {
                    if first != b'$' {
                        return Some(self.poison_arg(true, &[first, b'\r', b'\n'], "expected '$'"));
                    }
                    let Some(n) = self.valid_bulk_len(num) else {
                        return Some(self.poison_arg(true, POISON_BULK, "invalid bulk length"));
                    };
                    if n > self.limits.max_intercepted as u64 {
                        return Some(self.poison_arg(
                            true,
                            POISON_BULK,
                            "intercepted command too large",
                        ));
                    }
                    let start = pos + len;
                    let end = start + n as usize;
                    if buf.len() < end + 2 {
                        return self.wait_intercepted(buf);
                    }
                    spans.push((start, end));
                    pos = end + 2;
                }
            }
        }
        let args = spans
            .into_iter()
            .map(|(s, e)| Bytes::copy_from_slice(&buf[s..e]))
            .collect();
        Some(Item::Command(Command { kind, args }, pos))
    }

    fn wait_intercepted(&mut self, buf: &[u8]) -> Option<Item> {
        if buf.len() > self.limits.max_intercepted {
            Some(self.poison_arg(true, POISON_BULK, "intercepted command too large"))
        } else {
            None
        }
    }

    fn inline(&mut self, buf: &[u8]) -> Option<Item> {
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > INLINE_MAX {
                // redis-server replies "too big inline request" and closes.
                self.state = State::Raw;
                return Some(Item::Forward(buf.len()));
            }
            return None;
        };
        let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if let Some(args) = split_args(&buf[..line_end])
            && let Some(kind) = args.first().and_then(|a| Intercept::from_name(a))
        {
            let args = args.into_iter().skip(1).map(Bytes::from).collect();
            return Some(Item::Command(Command { kind, args }, nl + 1));
        }
        Some(Item::Forward(nl + 1))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline request into arguments like redis-server's `sdssplitargs`; `None` for
/// unbalanced quotes.
pub(crate) fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && let (Some(h), Some(l)) = (hex_val(line[i + 2]), hex_val(line[i + 3]))
                {
                    cur.push(h * 16 + l);
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    c if is_space(c) => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_bulk: 512 * 1024 * 1024,
            max_intercepted: 1024 * 1024,
        }
    }

    type Outcome = (Vec<u8>, Vec<(Intercept, Vec<Vec<u8>>)>, Option<Poison>);

    /// Feeds `input` in chunks of `chunk` bytes; returns (forwarded bytes, commands, poison).
    fn run(input: &[u8], chunk: usize) -> Outcome {
        let mut p = RequestParser::new(limits());
        let mut buf = Vec::new();
        let mut fwd = Vec::new();
        let mut cmds = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(c);
            let mut pos = 0;
            while let Some(item) = p.next(&buf[pos..]) {
                match item {
                    Item::Forward(n) => {
                        assert!(n > 0);
                        fwd.extend_from_slice(&buf[pos..pos + n]);
                        pos += n;
                    }
                    Item::Command(c, n) => {
                        fwd.extend_from_slice(b"<CMD>");
                        cmds.push((c.kind, c.args.iter().map(|a| a.to_vec()).collect()));
                        pos += n;
                    }
                    Item::Poison(p) => return (fwd, cmds, Some(p)),
                }
            }
            buf.drain(..pos);
        }
        (fwd, cmds, None)
    }

    #[test]
    fn passes_ordinary_commands_through_in_any_chunking() {
        let input =
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
        for chunk in [1, 2, 3, 7, 100] {
            let (fwd, cmds, poison) = run(input, chunk);
            assert_eq!(fwd, input.to_vec(), "chunk {chunk}");
            assert!(cmds.is_empty());
            assert!(poison.is_none());
        }
    }

    #[test]
    fn intercepts_auth_and_hello_in_both_syntaxes() {
        let input = b"*3\r\n$4\r\nauth\r\n$3\r\noid\r\n$5\r\ntoken\r\nHELLO 3 AUTH u \"p w\"\r\n*1\r\n$4\r\nPING\r\n";
        for chunk in [1, 5, 1000] {
            let (fwd, cmds, poison) = run(input, chunk);
            assert!(poison.is_none());
            assert_eq!(fwd, b"<CMD><CMD>*1\r\n$4\r\nPING\r\n".to_vec());
            assert_eq!(cmds[0].0, Intercept::Auth);
            assert_eq!(cmds[0].1, vec![b"oid".to_vec(), b"token".to_vec()]);
            assert_eq!(cmds[1].0, Intercept::Hello);
            assert_eq!(
                cmds[1].1,
                vec![
                    b"3".to_vec(),
                    b"AUTH".to_vec(),
                    b"u".to_vec(),
                    b"p w".to_vec()
                ]
            );
        }
    }

    #[test]
    fn streams_large_arguments() {
        let big = vec![b'x'; 300_000];
        let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", big.len()).into_bytes();
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\n");
        let (fwd, _, poison) = run(&input, 65536);
        assert!(poison.is_none());
        assert_eq!(fwd, input);
    }

    #[test]
    fn malformed_input_poisons() {
        for (input, expect) in [
            (&b"*x\r\n"[..], &b"*x\r\n"[..]),
            (b"*1\r\n?\r\n", b"*1\r\n?\r\n"),
            (b"*1\r\n$-3\r\n", b"*1\r\n$x\r\n"),
            (b"*2\r\n$3\r\nGET\r\n:1\r\n", b"*2\r\n$3\r\nGET\r\n:\r\n"),
            (
                b"*2\r\n$3\r\nGET\r\n$99999999999\r\n",
                b"*2\r\n$3\r\nGET\r\n$x\r\n",
            ),
            (b"*99999999999\r\n", b"*x\r\n"),
        ] {
            let (fwd, _, poison) = run(input, 1000);
            let poison = poison.expect("poison");
            let mut all = fwd;
            all.extend_from_slice(&poison.bytes);
            assert_eq!(all, expect.to_vec(), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn oversized_intercepted_command_poisons() {
        let input = b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$2000000\r\nxxxxxxxxxxxxxxxxxxxxxxx";
        let (_, _, poison) = run(input, 1000);
        assert!(poison.is_some());
    }

    #[test]
    fn string2ll_is_strict() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"12"), Some(12));
        assert_eq!(string2ll(b"-3"), Some(-3));
        assert_eq!(string2ll(b"012"), None);
        assert_eq!(string2ll(b"+1"), None);
        assert_eq!(string2ll(b""), None);
        assert_eq!(string2ll(b"99999999999999999999"), None);
    }

    #[test]
    fn split_args_like_redis() {
        assert_eq!(
            split_args(b"  a b  ").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            split_args(b"\"a\\x41\\n\" 'b\\'c'").unwrap(),
            vec![b"aA\n".to_vec(), b"b'c".to_vec()]
        );
        assert!(split_args(b"\"abc").is_none());
        assert!(split_args(b"\"a\"b").is_none());
        assert!(split_args(b"").unwrap().is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_u64;
        for _ in 0..2000 {
            let mut input = Vec::new();
            for _ in 0..(seed % 64) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let alphabet = b"*$\r\n0123-xAUTHhello \"'";
                input.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let _ = run(&input, (seed % 5 + 1) as usize);
        }
    }
}
