//! The resumable parser of client requests: [`RequestParser`] and the state it keeps between
//! reads of one connection.

use bytes::Bytes;

use super::redis_strings::{split_args, string2ll};
use super::{Command, INLINE_MAX, Intercept, Item, Limits, NAME_MAX, Poison};

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
    pub(super) examined: u64,
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
