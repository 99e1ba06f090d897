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
    /// What is known about the bytes at the front of the caller's buffer, kept while `next`
    /// answers `None` (the caller then hands the same bytes back with more appended), so that
    /// each input byte is examined a bounded number of times however the input is split.
    /// Offsets count from the start of that buffer; cleared whenever an item is returned.
    progress: Progress,
    /// Input bytes examined so far (searched for a line end, or copied into an argument).
    #[cfg(test)]
    examined: u64,
}

/// Progress through input that is not complete yet; see [`RequestParser::progress`].
#[derive(Debug, Default)]
struct Progress {
    /// The line being looked for (a header line or an inline request) has no line end before
    /// this offset.
    searched: usize,
    /// The multibulk request at the front of the buffer, while it is incomplete.
    request: Option<Partial>,
}

/// A multibulk request whose first bytes have arrived: its command name is not known yet, or it
/// is an intercepted command that is buffered until its last argument is in.
#[derive(Debug)]
struct Partial {
    /// Elements announced by `*N` (the command name included).
    count: u64,
    /// Elements complete so far.
    done: u64,
    /// Offset just past the last complete element (or the `*N` header).
    parsed: usize,
    /// The next element's `$len` header, once parsed: (payload offset, payload length).
    bulk: Option<(usize, usize)>,
    /// The intercepted command, once the name is in.
    kind: Option<Intercept>,
    /// Payload ranges of the arguments complete so far.
    args: Vec<(usize, usize)>,
}

enum Header {
    Incomplete,
    TooLong,
    /// (first byte, parsed number or None, total header length incl. CRLF)
    Line(u8, Option<i64>, usize),
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
            progress: Progress::default(),
            #[cfg(test)]
            examined: 0,
        }
    }

    /// Finds the first `byte` in `buf[from..]`, resuming where the last unsuccessful search of
    /// the same line stopped; an unsuccessful search records how far it got.
    fn find(&mut self, buf: &[u8], from: usize, byte: u8) -> Option<usize> {
        let start = from.max(self.progress.searched).min(buf.len());
        let found = buf[start..].iter().position(|&b| b == byte);
        #[cfg(test)]
        {
            self.examined += found.map_or(buf.len() - start, |i| i + 1) as u64;
        }
        match found {
            Some(i) => Some(start + i),
            None => {
                self.progress.searched = buf.len();
                None
            }
        }
    }

    /// Parses a header line at `buf[at..]` the way redis-server does: up to the first `\r`,
    /// which must be followed by at least one more byte (the `\n`, not checked).
    fn header(&mut self, buf: &[u8], at: usize) -> Header {
        match self.find(buf, at, b'\r') {
            None => {
                if buf.len() - at > INLINE_MAX {
                    Header::TooLong
                } else {
                    Header::Incomplete
                }
            }
            Some(cr) if cr + 1 >= buf.len() => {
                // Found again at once next time.
                self.progress.searched = cr;
                Header::Incomplete
            }
            Some(cr) => {
                let num = if cr > at {
                    string2ll(&buf[at + 1..cr])
                } else {
                    None
                };
                Header::Line(buf[at], num, cr - at + 2)
            }
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
    /// again; after `None` it calls again with the same bytes and more appended.
    pub(crate) fn next(&mut self, buf: &[u8]) -> Option<Item> {
        let item = self.step(buf);
        if item.is_some() {
            self.progress = Progress::default();
        }
        item
    }

    fn step(&mut self, buf: &[u8]) -> Option<Item> {
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
                State::ArgHeader { remaining } => match self.header(buf, 0) {
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

    /// A multibulk request at the front of `buf`: forwarded from its command name on unless
    /// the name is intercepted, in which case it is buffered whole. Resumes from
    /// [`Progress::request`], so that every element is parsed once however the input is split.
    fn multibulk(&mut self, buf: &[u8]) -> Option<Item> {
        let mut req = match self.progress.request.take() {
            Some(req) => req,
            None => {
                let (count, hlen) = match self.header(buf, 0) {
                    Header::Incomplete => return None,
                    Header::TooLong => {
                        return Some(self.poison_multibulk("too big mbulk count string"));
                    }
                    Header::Line(_, num, len) => match num {
                        Some(n) if n <= i64::from(i32::MAX) => (n, len),
                        _ => return Some(self.poison_multibulk("invalid multibulk length")),
                    },
                };
                if count <= 0 {
                    // redis-server skips an empty multibulk request.
                    return Some(Item::Forward(hlen));
                }
                Partial {
                    count: count.unsigned_abs(),
                    done: 0,
                    parsed: hlen,
                    bulk: None,
                    kind: None,
                    args: Vec::new(),
                }
            }
        };
        let item = self.multibulk_elements(buf, &mut req);
        if item.is_none() {
            self.progress.request = Some(req);
        }
        item
    }

    /// The elements of `req` from `req.parsed` on; `None` when more input is needed.
    fn multibulk_elements(&mut self, buf: &[u8], req: &mut Partial) -> Option<Item> {
        loop {
            let (start, len) = match req.bulk {
                Some(bulk) => bulk,
                None => {
                    let (n, hlen) = match self.header(buf, req.parsed) {
                        Header::Incomplete => return self.wait_intercepted(buf, req),
                        Header::TooLong => {
                            return Some(self.poison_arg(
                                true,
                                POISON_BULK,
                                "too big bulk count string",
                            ));
                        }
                        Header::Line(first, num, len) => {
                            if first != b'$' {
                                return Some(self.poison_arg(
                                    true,
                                    &[first, b'\r', b'\n'],
                                    "expected '$'",
                                ));
                            }
                            match self.valid_bulk_len(num) {
                                Some(n) => (n, len),
                                None => {
                                    return Some(self.poison_arg(
                                        true,
                                        POISON_BULK,
                                        "invalid bulk length",
                                    ));
                                }
                            }
                        }
                    };
                    let start = req.parsed + hlen;
                    if req.kind.is_none() && n > NAME_MAX {
                        // Too long for a name the gate inspects: stream it.
                        self.state = State::Bulk {
                            bytes: n.saturating_add(2),
                            remaining: req.count - 1,
                        };
                        return Some(Item::Forward(start));
                    }
                    if req.kind.is_some() && n > self.limits.max_intercepted as u64 {
                        return Some(self.poison_arg(
                            true,
                            POISON_BULK,
                            "intercepted command too large",
                        ));
                    }
                    // Both checks above bound `n` by a `usize`.
                    let len = n as usize;
                    req.bulk = Some((start, len));
                    (start, len)
                }
            };
            let end = start + len;
            if buf.len() < end + 2 {
                return self.wait_intercepted(buf, req);
            }
            match req.kind {
                None => {
                    #[cfg(test)]
                    {
                        self.examined += len as u64;
                    }
                    let Some(kind) = Intercept::from_name(&buf[start..end]) else {
                        self.state = State::ArgHeader {
                            remaining: req.count - 1,
                        };
                        return Some(Item::Forward(end + 2));
                    };
                    req.kind = Some(kind);
                }
                Some(_) => req.args.push((start, end)),
            }
            req.parsed = end + 2;
            req.bulk = None;
            req.done += 1;
            if req.done == req.count {
                break;
            }
        }
        let kind = req.kind?;
        let args = req
            .args
            .iter()
            .map(|&(s, e)| Bytes::copy_from_slice(&buf[s..e]))
            .collect();
        #[cfg(test)]
        {
            self.examined += req.args.iter().map(|&(s, e)| (e - s) as u64).sum::<u64>();
        }
        Some(Item::Command(Command { kind, args }, req.parsed))
    }

    /// More input is needed for `req`: poisons an intercepted command that grew too large.
    fn wait_intercepted(&mut self, buf: &[u8], req: &Partial) -> Option<Item> {
        if req.kind.is_some() && buf.len() > self.limits.max_intercepted {
            Some(self.poison_arg(true, POISON_BULK, "intercepted command too large"))
        } else {
            None
        }
    }

    fn inline(&mut self, buf: &[u8]) -> Option<Item> {
        let Some(nl) = self.find(buf, 0, b'\n') else {
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

    /// Feeds `input` to one parser in chunks of `chunk` bytes as the gate does (unconsumed
    /// bytes are handed back with the next chunk); returns the commands and the input bytes the
    /// parser examined.
    fn examined(input: &[u8], chunk: usize) -> (Vec<Command>, u64) {
        let mut p = RequestParser::new(limits());
        let mut buf = Vec::new();
        let mut cmds = Vec::new();
        for c in input.chunks(chunk) {
            buf.extend_from_slice(c);
            let mut pos = 0;
            while let Some(item) = p.next(&buf[pos..]) {
                match item {
                    Item::Forward(n) => pos += n,
                    Item::Command(c, n) => {
                        cmds.push(c);
                        pos += n;
                    }
                    Item::Poison(p) => panic!("poison: {}", p.reason),
                }
            }
            buf.drain(..pos);
        }
        assert!(buf.is_empty(), "{} bytes left unparsed", buf.len());
        (cmds, p.examined)
    }

    #[test]
    fn split_intercepted_command_with_a_large_argument_is_parsed_in_linear_time() {
        let token = vec![b't'; 1_000_000];
        let mut input =
            format!("*3\r\n$4\r\nAUTH\r\n$3\r\noid\r\n${}\r\n", token.len()).into_bytes();
        input.extend_from_slice(&token);
        input.extend_from_slice(b"\r\n");
        let (cmds, examined) = examined(&input, 64);
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].kind, Intercept::Auth);
        assert_eq!(cmds[0].args[0].as_ref(), b"oid");
        assert_eq!(cmds[0].args[1].len(), token.len());
        assert!(
            examined <= 2 * input.len() as u64,
            "{examined} bytes examined for {} bytes of input",
            input.len()
        );
    }

    #[test]
    fn split_intercepted_command_with_many_arguments_is_parsed_in_linear_time() {
        // A SUBSCRIBE of 45 000 channels (about 950 kB) arriving 64 bytes at a time: re-parsed
        // from its first byte on every read, as it once was, it cost about 30 s of CPU.
        let channels = 45_000;
        let mut input = format!("*{}\r\n$9\r\nSUBSCRIBE\r\n", channels + 1).into_bytes();
        for i in 0..channels {
            let c = format!("channel:{i:06}");
            input.extend_from_slice(format!("${}\r\n{c}\r\n", c.len()).as_bytes());
        }
        for chunk in [1, 64, 1000] {
            let (cmds, examined) = examined(&input, chunk);
            assert_eq!(cmds.len(), 1);
            assert_eq!(cmds[0].kind, Intercept::Subscribe);
            assert_eq!(cmds[0].args.len(), channels);
            assert_eq!(cmds[0].args[channels - 1].as_ref(), b"channel:044999");
            assert!(
                examined <= 2 * input.len() as u64,
                "chunk {chunk}: {examined} bytes examined for {} bytes of input",
                input.len()
            );
        }
    }

    #[test]
    fn long_lines_split_into_single_bytes_are_searched_in_linear_time() {
        // An inline request and a header line just under the limit, one byte per read.
        let mut inline = b"AUTH u ".to_vec();
        inline.resize(INLINE_MAX - 2, b'p');
        inline.extend_from_slice(b"\r\n");
        let mut header = b"*1\r\n$".to_vec();
        header.resize(INLINE_MAX - 2, b'0');
        header.extend_from_slice(b"\r\n");
        let (cmds, examined) = examined(&inline, 1);
        assert_eq!(cmds.len(), 1);
        assert!(examined <= 2 * inline.len() as u64, "{examined}");

        let mut p = RequestParser::new(limits());
        let mut buf = Vec::new();
        let mut poison = None;
        for &b in &header {
            buf.push(b);
            if let Some(item) = p.next(&buf) {
                poison = Some(item);
                break;
            }
        }
        assert!(matches!(poison, Some(Item::Poison(_))), "{poison:?}");
        assert!(p.examined <= 2 * header.len() as u64, "{}", p.examined);
    }

    #[test]
    fn intercepted_commands_parse_alike_in_any_chunking() {
        let mut input = Vec::new();
        input.extend_from_slice(b"*4\r\n$9\r\nsubscribe\r\n$1\r\na\r\n$0\r\n\r\n$2\r\nbc\r\n");
        input.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        input.extend_from_slice(b"*1\r\n$5\r\nRESET\r\n");
        input.extend_from_slice(b"*0\r\n*2\r\n$20\r\nAUTHAUTHAUTHAUTHAUTH\r\n$1\r\nx\r\n");
        input.extend_from_slice(b"*3\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n");
        let (whole, cmds, poison) = run(&input, input.len());
        assert!(poison.is_none());
        assert_eq!(cmds.len(), 3);
        for chunk in 1..40 {
            let (fwd, c, poison) = run(&input, chunk);
            assert!(poison.is_none(), "chunk {chunk}");
            assert_eq!((&fwd, &c), (&whole, &cmds), "chunk {chunk}");
        }
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
