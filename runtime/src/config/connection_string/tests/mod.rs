//! Table-driven tests of connection string parsing, in both syntaxes: what parses and into
//! what here, what is refused and how in [`refusals`].

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

mod refusals;

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
