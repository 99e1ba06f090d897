//! Connection strings that are refused: each with the position and what is wrong, never the
//! key; unknown StackExchange keys with a did-you-mean; odd input without a panic.

use super::*;

#[test]
fn rejects_malformed_connection_strings_with_position_and_no_key() {
    use ConnectionStringErrorKind as K;
    let cases: &[(&str, ConnectionStringErrorKind, usize)] = &[
        ("", K::Empty, 0),
        ("   ", K::Empty, 0),
        (",password=SECRETKEY", K::MissingHost, 0),
        ("password=SECRETKEY,ssl=True", K::MissingHost, 0),
        ("rediss://:SECRETKEY@/0", K::MissingHost, 20),
        ("rediss://:SECRETKEY@", K::MissingHost, 20),
        (
            "rediss://:SECRETKEY@:6380/0",
            K::BadHost(HostError::Empty),
            20,
        ),
        (
            "h:abc,password=SECRETKEY",
            K::BadHost(HostError::BadPort),
            0,
        ),
        ("h:0,password=SECRETKEY", K::BadHost(HostError::BadPort), 0),
        (
            "rediss://:SECRETKEY@h:99999/0",
            K::BadHost(HostError::BadPort),
            20,
        ),
        ("http://:SECRETKEY@h:6380", K::UnknownScheme, 0),
        ("  unix://x", K::UnknownScheme, 2),
        // The scheme is not repeated: it may be anything, a key included.
        ("SECRETKEY://h:6380", K::UnknownScheme, 0),
        // Several colons outside brackets: not an IPv6 address, so not a host name.
        (
            "redis:h:1,password=SECRETKEY",
            K::BadHost(HostError::NotIpv6),
            0,
        ),
        (
            "h:6380:6380,password=SECRETKEY",
            K::BadHost(HostError::NotIpv6),
            0,
        ),
        (
            "password=SECRETKEY,h:6380:6380",
            K::BadHost(HostError::NotIpv6),
            19,
        ),
        (
            "rediss://:SECRETKEY@h:6380:6380/0",
            K::BadHost(HostError::NotIpv6),
            20,
        ),
        // Two `@` before the query: which one ends the user part cannot be told.
        ("rediss://:SECRETKEY@h:6380/0@evil", K::SeveralAts, 19),
        ("rediss://:SECRET@KEY@h:6380/0", K::SeveralAts, 16),
        ("rediss://@@h", K::SeveralAts, 9),
        // A raw `?` or `#` in the key starts the query: the host is then missing or wrong.
        (
            "rediss://:SECRET?KEY@h:6380/0",
            K::BadHost(HostError::Empty),
            9,
        ),
        (
            "rediss://:SECRET#KEY@h:6380/0",
            K::BadHost(HostError::Empty),
            9,
        ),
        (
            "[::1,password=SECRETKEY",
            K::BadHost(HostError::UnclosedBracket),
            0,
        ),
        (
            "rediss://:SECRETKEY@[::1:6380/0",
            K::BadHost(HostError::UnclosedBracket),
            20,
        ),
        ("rediss://:SECRETKEY@h:6380/x", K::BadDatabase, 26),
        ("rediss://:SECRETKEY@h:6380/-1", K::BadDatabase, 26),
        (
            "h:6380,password=SECRETKEY,defaultDatabase=-1",
            K::BadOptionValue {
                option: "defaultDatabase",
                expected: "a database number",
            },
            26,
        ),
        (
            "h:6380,password=SECRETKEY,ssl=maybe",
            K::BadOptionValue {
                option: "ssl",
                expected: "a boolean (`true`, `false`, `yes`, `no`, `on`, `off`, `1` or `0`)",
            },
            26,
        ),
        (
            "h:6380,password=SECRETKEY,SSL=",
            K::BadOptionValue {
                option: "ssl",
                expected: "a boolean (`true`, `false`, `yes`, `no`, `on`, `off`, `1` or `0`)",
            },
            26,
        ),
        ("h1:6380,h2:6380,password=SECRETKEY", K::SeveralEndpoints, 8),
        ("h:6380,SECRETKEY", K::SeveralEndpoints, 7),
        ("h:6380,=SECRETKEY", K::EmptyOptionKey, 7),
        ("rediss://:SECRET%zzKEY@h:6380", K::BadEscape, 9),
        ("rediss://:SECRETKEY%@h:6380", K::BadEscape, 9),
        ("rediss://:SECRET%+1KEY@h:6380", K::BadEscape, 9),
        (
            "rediss://:SECRETKEY@h o st:6380",
            K::BadHost(HostError::BadCharacter),
            20,
        ),
    ];
    for (input, kind, position) in cases {
        let error = ConnectionString::parse(input).expect_err(input);
        assert_eq!(&error.kind, kind, "{input}");
        assert_eq!(error.position, *position, "{input}");
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("SECRET"), "{input}: {shown}");
    }
}

#[test]
fn several_colons_are_refused_with_a_clear_error() {
    for input in ["redis:host:1", "host:6380:6380"] {
        let error = ConnectionString::parse(input).expect_err(input);
        assert_eq!(
            error.kind,
            ConnectionStringErrorKind::BadHost(HostError::NotIpv6),
            "{input}"
        );
        let text = error.to_string();
        assert!(text.contains("`[addr]:port`"), "{text}");
        assert!(text.contains("`rediss://`"), "{text}");
    }
    // IPv6 addresses still parse, bare or in brackets.
    let cs = ConnectionString::parse("fe80::1,password=k,ssl=True").unwrap();
    assert_eq!(
        (cs.endpoint.host.as_str(), cs.endpoint.port),
        ("fe80::1", 6380)
    );
}

#[test]
fn unknown_stackexchange_keys_are_refused_naming_the_key_and_a_suggestion() {
    let acr = "shop.redis.cache.windows.net";
    let unknown = |key: Option<&str>, suggestion: Option<&'static str>| {
        ConnectionStringErrorKind::UnknownOption {
            key: key.map(str::to_owned),
            suggestion,
        }
    };
    let cases = [
        (
            "defaultDatabse=3",
            unknown(Some("defaultDatabse"), Some("defaultDatabase")),
        ),
        ("sll=True", unknown(Some("sll"), Some("ssl"))),
        (
            "pasword=SECRETKEY",
            unknown(Some("pasword"), Some("password")),
        ),
        (
            "Pasword=SECRETKEY",
            unknown(Some("Pasword"), Some("password")),
        ),
        ("sslhots=x", unknown(Some("sslhots"), Some("sslHost"))),
        (
            "abortConect=false",
            unknown(Some("abortConect"), Some("abortConnect")),
        ),
        ("username=app", unknown(Some("username"), Some("user"))),
        ("tls=true", unknown(Some("tls"), Some("ssl"))),
        ("db=2", unknown(Some("db"), Some("defaultDatabase"))),
        ("frobnicate=SECRETKEY", unknown(Some("frobnicate"), None)),
        // Not the shape of a keyword: not shown, a suggestion still given.
        ("ssl2=true", unknown(None, Some("ssl"))),
    ];
    for (option, kind) in cases {
        let input = format!("{acr}:6380,{option},password=SECRETKEY");
        let error = ConnectionString::parse(&input).expect_err(&input);
        assert_eq!(error.kind, kind, "{input}");
        assert_eq!(error.position, acr.len() + 6, "{input}");
        assert!(!format!("{error} {error:?}").contains("SECRET"), "{input}");
    }
    let error = ConnectionString::parse(&format!("{acr},sll=True,password=k")).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "unknown option `sll`; did you mean `ssl`? (at byte {})",
            acr.len() + 1
        )
    );
    let error = ConnectionString::parse(&format!("{acr},frobnicate=1")).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("unknown option `frobnicate`: StackExchange.Redis knows no such option"),
        "{error}"
    );
}

#[test]
fn an_unknown_key_that_may_be_a_secret_is_never_shown() {
    let acr = "shop.redis.cache.windows.net";
    let access_key = "QkxBSDpibGFoYmxhaGJsYWhibGFoYmxhaGJsYWhibGE=";
    // 36 letters before the `=`: past the limit.
    let letters_only = "SECRETKEYSECRETKEYSECRETKEYSECRETKEY==";
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiIxIn0.c2ln=";
    for pasted in [KEY, access_key, letters_only, jwt, "SENTINEL-7f3a9c=x"] {
        let input = format!("{acr}:6380,ssl=True,{pasted}");
        let error = ConnectionString::parse(&input).expect_err(&input);
        let ConnectionStringErrorKind::UnknownOption { key: None, .. } = &error.kind else {
            panic!("{input}: {:?}", error.kind)
        };
        let shown = format!("{error} {error:?}");
        let secret_start = &pasted[..pasted.find(['=', '.', '-']).unwrap_or(pasted.len())];
        assert!(!shown.contains(secret_start), "{input}: {shown}");
        assert!(shown.contains("not shown"), "{shown}");
    }
}

#[test]
fn never_panics_on_odd_input() {
    let odd = [
        "://",
        "a://",
        "rediss://",
        "rediss://@",
        "rediss://:@h",
        "rediss://[",
        "rediss://[]",
        "rediss://:k@h:",
        "rediss://:@",
        "rediss://@@",
        "rediss://?@",
        "rediss://h:1:2:3",
        "h,$=",
        "h,$",
        ",,,,",
        "=",
        "==,==",
        "h:6380,password",
        "é:6380,password=ü",
        "rediss://:ü@é/0",
        "\u{0}",
        "rediss://:%",
        "rediss://:%2",
        "[",
        "]:1",
        "h:-1",
    ];
    for input in odd {
        // Either outcome is fine; reaching the end without a panic is the test.
        let _ = ConnectionString::parse(input).map(|cs| cs.endpoint.port);
    }
    // Every prefix of a valid string, cut at any char boundary.
    let full = "rediss://app:k3y/+=@[::1]:6380/2?x=1";
    for end in (0..=full.len()).filter(|i| full.is_char_boundary(*i)) {
        let _ = ConnectionString::parse(&full[..end]);
    }
    assert!(ConnectionString::parse(full).is_ok());
}
