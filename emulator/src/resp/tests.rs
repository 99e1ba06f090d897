//! Unit tests of the request parser: chunking, interception, poisons and linear-time parsing.

use super::parser::RequestParser;
use super::redis_strings::{split_args, string2ll};
use super::{Command, INLINE_MAX, Intercept, Item, Limits, Poison};

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
    let mut input = format!("*3\r\n$4\r\nAUTH\r\n$3\r\noid\r\n${}\r\n", token.len()).into_bytes();
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
