//! Table-driven tests of connection string parsing and auth resolution.

use secrecy::ExposeSecret;

use super::*;

const KEY: &str = "k3y/with+slash=and==";

struct Case {
    input: String,
    host: &'static str,
    port: u16,
    tls: bool,
    database: i64,
    username: Option<&'static str>,
    password: Option<&'static str>,
    syntax: Syntax,
}

/// A case `input` parses into: the endpoint comes from [`Case::tls`] or [`Case::plain`], the
/// database is 0 unless [`Case::database`] says otherwise, the password is [`KEY`].
fn ok(input: impl Into<String>) -> Case {
    let input = input.into();
    let syntax = if input.contains("://") {
        Syntax::Url
    } else {
        Syntax::StackExchange
    };
    Case {
        input,
        host: "",
        port: 0,
        tls: false,
        database: 0,
        username: None,
        password: Some(KEY),
        syntax,
    }
}

impl Case {
    /// Expects TLS to `host:port`.
    fn tls(self, host: &'static str, port: u16) -> Case {
        Case {
            host,
            port,
            tls: true,
            ..self
        }
    }

    /// Expects plaintext to `host:port`.
    fn plain(self, host: &'static str, port: u16) -> Case {
        Case {
            host,
            port,
            tls: false,
            ..self
        }
    }

    /// Expects database `database`.
    fn database(self, database: i64) -> Case {
        Case { database, ..self }
    }
}

#[test]
fn parses_service_connector_connection_strings() {
    let acr = "shop.redis.cache.windows.net";
    let amr = "shop.westeurope.redis.azure.net";
    let enterprise = "shop.westeurope.redisenterprise.cache.azure.net";
    let cases = [
        // Service Connector, client type .NET (StackExchange.Redis).
        ok(
            format!("{acr}:6380,password={KEY},ssl=True,defaultDatabase=0")).tls(acr, 6380),
        ok(format!("{acr}:6380,password={KEY},ssl=True,abortConnect=False")).tls(acr, 6380),
        ok(format!(
                "{acr}:6380,password={KEY},ssl=True,defaultDatabase=3,abortConnect=False,connectTimeout=5000"
            )).tls(acr, 6380).database(3),
        ok(format!("{amr}:10000,password={KEY},ssl=True,defaultDatabase=0")).tls(amr, 10000),
        ok(format!(" {acr}:6380 , password={KEY} , ssl=true ")).tls(acr, 6380),
        ok(format!("{acr},password={KEY},ssl=True")).tls(acr, 6380),
        ok(format!("{amr},password={KEY}")).tls(amr, 10000),
        ok(format!("localhost,password={KEY}")).plain("localhost", 6379),
        ok(format!("[::1]:7000,password={KEY},ssl=False")).plain("::1", 7000),
        ok(format!("password={KEY},{acr}:6380,SSL=TRUE")).tls(acr, 6380),
        // The Enterprise tiers' older suffix is Azure Managed Redis: TLS on 10000 by default.
        ok(format!("{enterprise},password={KEY}")).tls(enterprise, 10000),
        ok(format!("{enterprise}:10000,password={KEY},ssl=True")).tls(enterprise, 10000),
        ok(format!("rediss://:{KEY}@{enterprise}")).tls(enterprise, 10000),
        // Keywords StackExchange.Redis knows but this client does not use are accepted.
        ok(format!(
            "{acr}:6380,password={KEY},ssl=True,syncTimeout=5000,name=shop,$CONFIG=,protocol=resp3"
        ))
        .tls(acr, 6380),
        // Service Connector, client types Java / Python / Go / Node.js (URL).
        ok(format!("rediss://:{KEY}@{acr}:6380/0")).tls(acr, 6380),
        ok(format!("rediss://:{KEY}@{amr}:10000/0")).tls(amr, 10000),
        ok(format!("rediss://:{KEY}@{acr}:6380/15")).tls(acr, 6380).database(15),
        ok(format!("rediss://:{KEY}@{acr}")).tls(acr, 6380),
        ok(format!("rediss://:{KEY}@{amr}/")).tls(amr, 10000),
        ok(format!("redis://:{KEY}@localhost")).plain("localhost", 6379),
        ok(format!("rediss://:{KEY}@[::1]:6380/1")).tls("::1", 6380).database(1),
        ok(format!("REDISS://:{KEY}@{acr}:6380/0?protocol=resp3")).tls(acr, 6380),
        // An `@` in the query or fragment does not end the user part.
        ok(format!("rediss://:{KEY}@{acr}:6380/0?x=a@b")).tls(acr, 6380),
        ok(format!("rediss://:{KEY}@{acr}:6380/1?x=a@evil:6380/0#y@z")).tls(acr, 6380).database(1),
        ok(format!("rediss://:{KEY}@{acr}#@evil")).tls(acr, 6380),
        // A percent-encoded `@`, `?` or `#` belongs to the key.
        Case {
            password: Some("a@b?c#d/e"),
            ..ok(format!("rediss://:a%40b%3Fc%23d/e@{acr}:6380/0")).tls(acr, 6380)
        },
        // A percent-encoded key decodes to the same key.
        ok(format!("rediss://:k3y%2Fwith%2Bslash%3Dand%3D%3D@{acr}:6380/0")).tls(acr, 6380),
        // A user part without `:` is a password, never shown as a user name.
        ok(format!("rediss://{KEY}@{acr}:6380/0")).tls(acr, 6380),
        Case {
            username: Some("app"),
            ..ok(format!("rediss://app:{KEY}@{acr}:6380/0")).tls(acr, 6380)
        },
        Case {
            username: Some("app"),
            ..ok(format!("{acr}:6380,user=app,password={KEY},ssl=True")).tls(acr, 6380)
        },
        Case {
            password: None,
            ..ok(format!("{acr}:6380,ssl=True")).tls(acr, 6380)
        },
        Case {
            password: Some("abc=="),
            ..ok(format!("{acr}:6380,password=abc==,ssl=True")).tls(acr, 6380)
        },
    ];
    for case in cases {
        // Debug output of failures names the input; it holds test keys only.
        let cs = ConnectionString::parse(&case.input)
            .unwrap_or_else(|e| panic!("{:?} should parse: {e}", case.input));
        let what = &case.input;
        assert_eq!(cs.endpoint.host, case.host, "{what}");
        assert_eq!(cs.endpoint.port, case.port, "{what}");
        assert_eq!(cs.endpoint.tls, case.tls, "{what}");
        assert_eq!(cs.endpoint.database, case.database, "{what}");
        assert_eq!(cs.username.as_deref(), case.username, "{what}");
        assert_eq!(
            cs.password.as_ref().map(|p| p.expose_secret()),
            case.password,
            "{what}"
        );
        assert_eq!(cs.syntax, case.syntax, "{what}");
        assert!(!format!("{cs:?}{cs}").contains(KEY), "{what}: key shown");
    }
}

#[test]
fn ssl_host_sets_the_tls_server_name() {
    let cs = ConnectionString::parse(
        "10.0.0.4:6380,password=k,ssl=True,sslHost=shop.redis.cache.windows.net",
    )
    .unwrap();
    assert_eq!(
        cs.endpoint.tls_server_name.as_deref(),
        Some("shop.redis.cache.windows.net")
    );
}

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
fn every_stackexchange_keyword_is_accepted_ignoring_case() {
    // StackExchange.Redis `ConfigurationOptions.OptionKeys`.
    let ignored = [
        "abortConnect=false",
        "allowAdmin=true",
        "asyncTimeout=5000",
        "channelPrefix=app:",
        "checkCertificateRevocation=false",
        "configChannel=__Booksleeve_MasterChanged",
        "configCheckSeconds=60",
        "connectRetry=3",
        "connectTimeout=5000",
        "highIntegrity=false",
        "keepAlive=60",
        "name=shop",
        "protocol=resp3",
        "proxy=None",
        "resolveDns=false",
        "sentinelPassword=s",
        "sentinelUser=u",
        "serviceName=mymaster",
        "setlib=false",
        "sslProtocols=Tls12|Tls13",
        "syncTimeout=5000",
        "tcpKeepAlive=true",
        "tiebreaker=__Booksleeve_TieBreak",
        "tunnel=http:proxy:8080",
        "version=7.2",
        "highPriorityThreads=true",
        "preserveAsyncOrder=false",
        "responseTimeout=5000",
        "writeBuffer=4096",
        "$CONFIG=",
        "$INFO=SECRETINFO",
    ];
    let acr = "shop.redis.cache.windows.net";
    for option in ignored {
        for option in [
            option.to_owned(),
            option.to_ascii_lowercase(),
            option.to_ascii_uppercase(),
        ] {
            let input = format!("{acr}:6380,password=k,{option}");
            let cs = ConnectionString::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (cs.endpoint.port, cs.endpoint.tls, cs.endpoint.database),
                (6380, true, 0),
                "{input}"
            );
            assert_eq!(cs.username, None, "{input}");
            assert_eq!(cs.endpoint.tls_server_name, None, "{input}");
        }
    }
    // The used ones, in odd case.
    let cs = ConnectionString::parse(
        "10.0.0.4:6380,PASSWORD=k,USER=app,sslhost=shop.redis.cache.windows.net,DefaultDatabase=2,Ssl=yes",
    )
    .unwrap();
    assert_eq!(cs.password.as_ref().map(|p| p.expose_secret()), Some("k"));
    assert_eq!(cs.username.as_deref(), Some("app"));
    assert_eq!(cs.endpoint.tls_server_name.as_deref(), Some(acr));
    assert_eq!((cs.endpoint.database, cs.endpoint.tls), (2, true));
}

#[test]
fn ssl_takes_every_boolean_stackexchange_takes() {
    // A host whose default is plaintext shows `true`, an Azure host (default TLS) `false`.
    for value in [
        "true", "True", "TRUE", "yes", "Yes", "on", "ON", "1", " On ",
    ] {
        let cs = ConnectionString::parse(&format!("localhost,password=k,ssl={value}")).unwrap();
        assert!(cs.endpoint.tls, "ssl={value}");
        assert_eq!(cs.endpoint.port, 6380, "ssl={value}");
    }
    for value in ["false", "False", "FALSE", "no", "NO", "off", "Off", "0"] {
        let input = format!("shop.redis.cache.windows.net,password=k,ssl={value}");
        let cs = ConnectionString::parse(&input).unwrap();
        assert!(!cs.endpoint.tls, "ssl={value}");
        assert_eq!(cs.endpoint.port, 6379, "ssl={value}");
    }
    for value in ["maybe", "2", "y", "t", "enabled", ""] {
        let input = format!("localhost,password=k,ssl={value}");
        let error = ConnectionString::parse(&input).expect_err(&input);
        assert!(
            matches!(
                error.kind,
                ConnectionStringErrorKind::BadOptionValue { option: "ssl", .. }
            ),
            "{input}: {error}"
        );
    }
}

#[test]
fn an_empty_password_is_none_and_drops_the_user_name() {
    let acr = "shop.redis.cache.windows.net";
    for input in [
        format!("rediss://:@{acr}:6380/0"),
        format!("rediss://@{acr}:6380/0"),
        format!("rediss://{KEY}:@{acr}:6380/0"),
        format!("rediss://k3y%2Fwith%2Bslash%3Dand%3D%3D:@{acr}:6380/0"),
        format!("{acr}:6380,password=,ssl=True"),
        format!("{acr}:6380,user={KEY},password=,ssl=True"),
        format!("{acr}:6380,user=app,ssl=True"),
    ] {
        let cs = ConnectionString::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert!(cs.password.is_none(), "{input}");
        assert_eq!(cs.username, None, "{input}");
        assert!(!format!("{cs:?} {cs}").contains(KEY), "{input}");

        // Resolved, it is a missing password; the key shows nowhere.
        let s = Settings {
            connection_string: Some(input.clone().into()),
            ..Settings::default()
        };
        let problems = resolve(spec(None), &s).unwrap_err();
        assert_eq!(
            problems,
            [Problem::NoPassword {
                var: "AZURE_REDIS_CONNECTIONSTRING"
            }],
            "{input}"
        );
        let error = ConfigError::new("Test", problems);
        assert!(!format!("{error} {error:?}").contains("k3y"), "{input}");
    }
}

#[test]
fn a_url_user_name_shows_in_auth_but_the_key_never_does() {
    let acr = "shop.redis.cache.windows.net";
    for (input, user) in [
        (format!("rediss://app:{KEY}@{acr}:6380/0"), Some("app")),
        (format!("rediss://:{KEY}@{acr}:6380/0"), None),
        (format!("rediss://{KEY}@{acr}:6380/0"), None),
        (format!("rediss://:{KEY}@{acr}:6380/0?x=a@b"), None),
    ] {
        let s = Settings {
            connection_string: Some(input.clone().into()),
            ..Settings::default()
        };
        let resolved = resolve(spec(None), &s).unwrap();
        let Auth::AccessKey { username, password } = &resolved.auth else {
            panic!("{input}: {:?}", resolved.auth)
        };
        assert_eq!(username.as_deref(), user, "{input}");
        assert_eq!(password.expose_secret(), KEY, "{input}");
        assert_eq!(resolved.endpoint.host, acr, "{input}");
        let shown = format!(
            "{} {:?} {resolved:?} {}",
            resolved.auth, resolved.auth, resolved.endpoint
        );
        assert!(!shown.contains(KEY), "{input}: {shown}");
        assert!(!shown.contains("k3y"), "{input}: {shown}");
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

const ROLE_VARS: &[(Role, &str)] = &[
    (Role::Host, "AZURE_REDIS_HOST"),
    (Role::Port, "AZURE_REDIS_PORT"),
    (Role::ClientId, "AZURE_REDIS_CLIENTID"),
    (Role::TenantId, "AZURE_REDIS_TENANTID"),
    (Role::ClientSecret, "AZURE_REDIS_CLIENTSECRET"),
    (Role::ConnectionString, "AZURE_REDIS_CONNECTIONSTRING"),
    (Role::Password, "AZURE_REDIS_PASSWORD"),
    (Role::FederatedTokenFile, "AZURE_FEDERATED_TOKEN_FILE"),
];

fn spec(auth: Option<&'static [AuthKind]>) -> &'static ConfigSpec {
    Box::leak(Box::new(ConfigSpec::new("Test", auth, &[], ROLE_VARS)))
}

fn settings(set: &[Role]) -> Settings {
    let mut s = Settings::default();
    for role in set {
        match role {
            Role::Host => s.host = Some("h.redis.cache.windows.net".into()),
            Role::ClientId => s.client_id = Some("cid".into()),
            Role::TenantId => s.tenant_id = Some("tid".into()),
            Role::ClientSecret => s.client_secret = Some("secret".into()),
            Role::ConnectionString => {
                s.connection_string =
                    Some("h.redis.cache.windows.net:6380,password=k,ssl=True".into())
            }
            Role::Password => s.password = Some("k".into()),
            Role::FederatedTokenFile => s.federated_token_file = Some("/var/run/token".into()),
            _ => unreachable!("not used in these tests"),
        }
    }
    s
}

#[test]
fn detection_follows_the_documented_precedence() {
    use AuthKind::*;
    use Role::*;
    let cases: &[(&[Role], &[AuthKind])] = &[
        (&[Host], &[SystemIdentity]),
        (&[Host, ClientId], &[UserIdentity]),
        (&[Host, ClientId, FederatedTokenFile], &[WorkloadIdentity]),
        (
            &[Host, ClientId, TenantId, ClientSecret],
            &[ServicePrincipal],
        ),
        (&[Host, Password], &[AccessKey]),
        (
            &[Host, Password, ClientId, TenantId, ClientSecret],
            &[AccessKey],
        ),
        (
            &[Role::ConnectionString, Host, Password],
            &[AuthKind::ConnectionString],
        ),
    ];
    for (set, expected) in cases {
        let resolved = resolve(spec(None), &settings(set)).unwrap();
        assert_eq!(resolved.auth_kinds, *expected, "{set:?}");
    }
}

#[test]
fn a_list_chooses_among_its_own_types_only() {
    use AuthKind::*;
    use Role::*;
    let azure_or_laptop: &'static [AuthKind] = &[SystemIdentity, DeveloperTools];
    let resolved = resolve(spec(Some(azure_or_laptop)), &settings(&[Host])).unwrap();
    assert_eq!(resolved.auth.kinds(), [SystemIdentity, DeveloperTools]);
    assert!(matches!(resolved.auth, Auth::FirstOf(_)));

    let user_or_laptop: &'static [AuthKind] = &[UserIdentity, DeveloperTools];
    let spec_ul = spec(Some(user_or_laptop));
    assert_eq!(
        resolve(spec_ul, &settings(&[Host, ClientId]))
            .unwrap()
            .auth
            .kinds(),
        [UserIdentity]
    );
    assert_eq!(
        resolve(spec_ul, &settings(&[Host])).unwrap().auth.kinds(),
        [DeveloperTools]
    );

    // workload identity stands in for user identity when only it is listed
    let wi_or_sp: &'static [AuthKind] = &[WorkloadIdentity, ServicePrincipal];
    let spec_ws = spec(Some(wi_or_sp));
    assert_eq!(
        resolve(spec_ws, &settings(&[Host, ClientId]))
            .unwrap()
            .auth
            .kinds(),
        [WorkloadIdentity]
    );
    // a secret singles out the service principal, whose missing tenant is then named
    let problems = resolve(spec_ws, &settings(&[Host, ClientId, ClientSecret])).unwrap_err();
    assert_eq!(
        problems,
        [Problem::Missing {
            var: "AZURE_REDIS_TENANTID",
            field: None,
            needed_by: Some(ServicePrincipal)
        }]
    );
}

#[test]
fn nothing_set_lists_what_each_allowed_type_lacks() {
    use AuthKind::*;
    let list: &'static [AuthKind] = &[ServicePrincipal, SystemIdentity];
    let problems = resolve(spec(Some(list)), &Settings::default()).unwrap_err();
    let [problem] = problems.as_slice() else {
        panic!("{problems:?}")
    };
    assert_eq!(
        problem.to_string(),
        "no auth type can be used with the variables that are set: `service_principal` needs \
         AZURE_REDIS_HOST, AZURE_REDIS_CLIENTID, AZURE_REDIS_TENANTID, AZURE_REDIS_CLIENTSECRET; \
         `system_identity` needs AZURE_REDIS_HOST"
    );
    // A single auth type names what it misses, one problem per variable.
    let only: &'static [AuthKind] = &[ServicePrincipal];
    let problems = resolve(spec(Some(only)), &settings(&[Role::Host])).unwrap_err();
    let vars: Vec<_> = problems.iter().filter_map(Problem::var).collect();
    assert_eq!(
        vars,
        [
            "AZURE_REDIS_CLIENTID",
            "AZURE_REDIS_TENANTID",
            "AZURE_REDIS_CLIENTSECRET"
        ]
    );
}

#[test]
fn endpoint_comes_from_host_port_ssl_and_database() {
    let mut s = settings(&[Role::Host]);
    let e = resolve(spec(None), &s).unwrap().endpoint;
    assert_eq!((e.port, e.tls, e.database), (6380, true, 0));
    s.host = Some("localhost:7001".into());
    assert_eq!(resolve(spec(None), &s).unwrap().endpoint.port, 7001);
    s.port = Some(7002);
    s.database = Some(4);
    let e = resolve(spec(None), &s).unwrap().endpoint;
    assert_eq!(
        (e.host.as_str(), e.port, e.database),
        ("localhost", 7002, 4)
    );
    s.host = Some("shop.westeurope.redisenterprise.cache.azure.net".into());
    s.port = None;
    let e = resolve(spec(None), &s).unwrap().endpoint;
    assert_eq!((e.port, e.tls), (10000, true));
    s.host = Some("bad host".into());
    assert!(matches!(
        resolve(spec(None), &s).unwrap_err().as_slice(),
        [Problem::BadHost {
            var: "AZURE_REDIS_HOST",
            error: HostError::BadCharacter
        }]
    ));
    s.host = Some("h".into());
    s.database = Some(-1);
    assert!(matches!(
        resolve(spec(None), &s).unwrap_err().as_slice(),
        [Problem::Invalid { .. }]
    ));
}

#[test]
fn connection_string_auth_carries_its_endpoint_and_key() {
    let s = settings(&[Role::ConnectionString]);
    let resolved = resolve(spec(None), &s).unwrap();
    assert_eq!(resolved.endpoint.host, "h.redis.cache.windows.net");
    let Auth::AccessKey {
        password,
        username: None,
    } = resolved.auth
    else {
        panic!()
    };
    assert_eq!(password.expose_secret(), "k");

    let mut s = Settings {
        connection_string: Some("h:6380,ssl=True".into()),
        ..Settings::default()
    };
    assert_eq!(
        resolve(spec(None), &s).unwrap_err(),
        [Problem::NoPassword {
            var: "AZURE_REDIS_CONNECTIONSTRING"
        }]
    );
    s.connection_string = Some("h:6380,password=SENTINEL,ssl=maybe".into());
    let problems = resolve(spec(None), &s).unwrap_err();
    assert!(matches!(
        problems.as_slice(),
        [Problem::ConnectionString { .. }]
    ));
    assert!(!format!("{problems:?} {}", problems[0]).contains("SENTINEL"));
}
