//! Connection strings in the two syntaxes Service Connector writes.
//!
//! Errors give the byte position and what is wrong, never the text at fault, which may be a key
//! (the one exception is an unknown StackExchange option key that has the shape of a keyword, see
//! below).
//!
//! # StackExchange.Redis syntax
//!
//! `host:6380,password=KEY,ssl=True,defaultDatabase=0` (client type .NET). Options are split at
//! every `,` and each at its first `=` (so `password=abc==` keeps `abc==`); there is no quoting.
//! An entry without `=` is the endpoint. Keys are matched ignoring ASCII case, as
//! StackExchange.Redis does. An empty `password=` is no password, and `user=` without a password
//! is dropped (no AUTH is sent without a password).
//!
//! Every keyword of StackExchange.Redis's `ConfigurationOptions` is accepted: the list is its
//! `ConfigurationOptions.OptionKeys` (source `src/StackExchange.Redis/ConfigurationOptions.cs`,
//! checked on the main branch as of August 2026). These are used:
//!
//! | key | meaning here |
//! |---|---|
//! | `password` | the access key; empty means none |
//! | `user` | the ACL user name; empty means none |
//! | `ssl` | TLS on or off; a boolean as StackExchange.Redis reads one: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`, in any case |
//! | `sslHost` | the name the server certificate is checked against ([`Endpoint::tls_server_name`]) |
//! | `defaultDatabase` | the database to `SELECT`, 0 or more |
//!
//! These are accepted and their values not read, because they tune StackExchange.Redis itself
//! (the connection layer has its own settings: `connect_timeout`, `response_timeout`, `resp2` on
//! the builder) or belong to deployments this crate does not connect to (Sentinel, Twemproxy /
//! Envoy proxies, HTTP tunnels): `abortConnect`, `allowAdmin`, `asyncTimeout`, `channelPrefix`,
//! `checkCertificateRevocation`, `configChannel`, `configCheckSeconds`, `connectRetry`,
//! `connectTimeout`, `highIntegrity`, `keepAlive`, `name`, `protocol`, `proxy`, `resolveDns`,
//! `sentinelPassword`, `sentinelUser`, `serviceName`, `setlib`, `sslProtocols`, `syncTimeout`,
//! `tcpKeepAlive`, `tiebreaker`, `tunnel`, `version`. StackExchange.Redis itself ignores the
//! deprecated `highPriorityThreads`, `preserveAsyncOrder`, `responseTimeout` and `writeBuffer`;
//! so does this parser. A key that starts with `$` renames a command in StackExchange.Redis
//! (`$CONFIG=`); it is accepted and ignored.
//!
//! Any other key is refused, as StackExchange.Redis refuses it, so that a typo (`sll=True`,
//! `defaultDatabse=3`, `pasword=...`) is not silently dropped: the error names the closest
//! keyword, and names the key itself only when it has the shape of a keyword (ASCII letters, at
//! most 32 of them). Text in the key position may be an access key pasted without `password=`
//! (`host,abc/d+e==` splits into the key `abc/d+e` and the value `=`); an Azure access key has
//! 44 base64 characters, 43 of them before its first `=`, and an Entra ID token holds dots, so
//! neither is ever shown. Values are never shown.
//!
//! # URL syntax
//!
//! `rediss://:KEY@host:6380/0` (client types Java, Python, Go, Node.js); `redis://` without TLS.
//! The path is `/` and a database number, or nothing; the query and fragment are ignored.
//!
//! Access keys are base64 and Service Connector writes them unencoded, so the user part may hold
//! `/`, `+` and `=`, and cannot end at the first `/` as in an ordinary URL parser. The rule:
//!
//! 1. The query or fragment starts at the first `?` or `#` after `://`. Neither is a base64
//!    character, so no raw key holds one.
//! 2. Before that point there is at most one `@`, and the user part ends at it: the user part
//!    is whatever lies between `://` and that `@`, slashes included; the host, port and path
//!    follow it. With no `@` there is no user part.
//! 3. Two or more `@` before the query are refused (neither base64 nor an Entra ID token holds
//!    an `@`): `rediss://:KEY@host:6380/0@evil` cannot be read as "send `KEY@host:6380/0` to
//!    `evil`", and `rediss://:KEY@host:6380/0?x=a@b` sends `KEY` to `host` (the `@` in the query
//!    does not count).
//!
//! So `rediss://:a/b+c==@host:6380/0` is the key `a/b+c==` for `host`. A user name or password
//! that holds `@`, `?`, `#` or `%` must percent-encode them (`%40`, `%3F`, `%23`, `%25`): an
//! unencoded `?` or `#` cannot be told apart from the start of a query, and an unencoded `@`
//! from the end of the user part. `%XX` escapes in the user part are decoded.
//!
//! The user part is `user:password`; a user part without `:` is the password alone (so a key
//! written without its leading `:` is never shown as a user name). An empty password is no
//! password, and then the user name is dropped too: in `rediss://KEY:@host` the "user name" is
//! most likely the key, and a user name is shown in `Display` and `Debug` of [`Auth`] where a
//! password never is.
//!
//! [`Auth`]: super::Auth
//!
//! # Where this parser decides differently from other libraries
//!
//! - TLS is inferred from the host: a StackExchange string without `ssl=` uses TLS for every
//!   host with an Azure suffix ([`Service`]), whatever the port. StackExchange.Redis's Azure
//!   defaults turn TLS on for Azure Managed Redis hosts, but for Azure Cache for Redis hosts only
//!   when the port is 6380, and it knows no TLS for other hosts unless `ssl=true`. In a URL the
//!   scheme alone decides, as everywhere.
//! - Default ports follow the service: without a port, Azure Managed Redis hosts
//!   (`*.redis.azure.net`, `*.redisenterprise.cache.azure.net`) get 10000, every other host 6380
//!   with TLS and 6379 without. That holds for `rediss://` URLs too, where redis-rs and most URL
//!   parsers use 6379 whatever the scheme; StackExchange.Redis uses 6380 for any TLS host,
//!   Azure Managed Redis included.
//! - One endpoint only: StackExchange.Redis takes a list of `host:port` entries; a second one is
//!   an error here.
//! - Unknown StackExchange keys are refused, as StackExchange.Redis does, but with a
//!   did-you-mean; keys it knows that do not apply here are accepted and ignored.
//! - In a URL, the user part runs to the one `@` before the query, slashes included (see above),
//!   where an ordinary URL parser stops at the first `/` and breaks a raw base64 key.
//! - An empty password is no password (`password=`, `rediss://:@host`), and a user name
//!   without a password is dropped.

use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;

use super::endpoint::{Endpoint, HostError, Service, split_host_port};

/// Which syntax a connection string was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// StackExchange.Redis: `host:port,password=...,ssl=True,...`.
    StackExchange,
    /// URL: `redis://` or `rediss://`.
    Url,
}

/// A parsed connection string: where to connect and with which key.
///
/// Both syntaxes Service Connector writes are read: StackExchange.Redis
/// (`host:6380,password=KEY,ssl=True,defaultDatabase=0`) and URL (`rediss://:KEY@host:6380/0`).
/// In short:
///
/// - StackExchange keys are matched ignoring case; `password`, `user`, `ssl`, `sslHost` and
///   `defaultDatabase` are used, every other keyword StackExchange.Redis knows is accepted and
///   ignored, and an unknown key is an error ([`ConnectionStringErrorKind::UnknownOption`]).
/// - Without `ssl=`, hosts with an Azure suffix get TLS; without a port, Azure Managed Redis
///   gets 10000, other hosts 6380 with TLS and 6379 without (URLs included).
/// - A URL's user part may hold a raw base64 key (`/`, `+`, `=`): it ends at the one `@` before
///   the first `?` or `#`; two `@` there are an error, and `@`, `?`, `#`, `%` in a user name or
///   password must be percent-encoded.
/// - An empty password is no password, and a user name without a password is dropped.
/// - One endpoint only.
///
/// ```
/// use azure_redis_connect::config::{ConnectionString, Syntax};
/// use azure_redis_connect::ExposeSecret;
///
/// let cs: ConnectionString = "shop.redis.cache.windows.net:6380,password=a/b+c==,ssl=True,abortConnect=False"
///     .parse()
///     .unwrap();
/// assert_eq!(cs.syntax, Syntax::StackExchange);
/// assert_eq!(cs.endpoint.host, "shop.redis.cache.windows.net");
/// assert_eq!(cs.password.as_ref().unwrap().expose_secret(), "a/b+c==");
///
/// let cs: ConnectionString = "rediss://:a/b+c==@shop.redis.cache.windows.net:6380/2".parse().unwrap();
/// assert_eq!((cs.endpoint.port, cs.endpoint.tls, cs.endpoint.database), (6380, true, 2));
/// assert_eq!(cs.password.as_ref().unwrap().expose_secret(), "a/b+c==");
/// // The key never shows:
/// assert!(!format!("{cs:?}").contains("a/b+c=="));
///
/// // A typo is an error, with a suggestion:
/// let error = "shop.redis.cache.windows.net,password=k,sll=True"
///     .parse::<ConnectionString>()
///     .unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "unknown option `sll`; did you mean `ssl`? (at byte 40)"
/// );
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionString {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// ACL user name (`user=` or the URL's user part), if any; never set without a password.
    pub username: Option<String>,
    /// The password (access key), if any; never empty.
    pub password: Option<SecretString>,
    /// The syntax it was written in.
    pub syntax: Syntax,
}

/// What is wrong with a connection string, and where (byte offset from its start).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at byte {position})")]
pub struct ConnectionStringError {
    /// What is wrong.
    pub kind: ConnectionStringErrorKind,
    /// Byte offset in the connection string where the problem was found.
    pub position: usize,
}

/// The ways a connection string can be malformed.
///
/// None of them holds text from the connection string, except [`UnknownOption`]'s key when it
/// has the shape of a keyword.
///
/// [`UnknownOption`]: ConnectionStringErrorKind::UnknownOption
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringErrorKind {
    /// Nothing but whitespace.
    #[error("the connection string is empty")]
    Empty,
    /// A URL whose scheme is neither `redis` nor `rediss` (not repeated: the text before `://`
    /// could be anything, a key included).
    #[error("unknown URL scheme: expected `rediss://` (TLS) or `redis://`")]
    UnknownScheme,
    /// No host before the options (StackExchange) or after `//` (URL).
    #[error("no host name is given")]
    MissingHost,
    /// The host or port cannot be read.
    #[error("bad host: {0}")]
    BadHost(HostError),
    /// More than one `host:port` entry; only one endpoint is supported.
    #[error(
        "more than one endpoint is given (an option without `=` counts as an endpoint); only one is supported"
    )]
    SeveralEndpoints,
    /// An option whose value cannot be read, such as `ssl=maybe`.
    #[error("the value of `{option}` is not {expected}")]
    BadOptionValue {
        /// The option's key as StackExchange.Redis spells it.
        option: &'static str,
        /// What the value should be.
        expected: &'static str,
    },
    /// An option key with nothing before the `=`.
    #[error("an option has an empty key before `=`")]
    EmptyOptionKey,
    /// A StackExchange option key that StackExchange.Redis does not know either, such as
    /// `sll=True`.
    #[error("{}", unknown_option(key.as_deref(), *suggestion))]
    UnknownOption {
        /// The key as written, when it has the shape of a keyword (ASCII letters only, at most
        /// 32); `None` otherwise, since text in that position may be a key pasted without
        /// `password=`.
        key: Option<String>,
        /// The keyword it most likely means, such as `ssl` for `sll`.
        suggestion: Option<&'static str>,
    },
    /// A URL path that is not `/` followed by a database number.
    #[error("the path must be `/` and a database number, such as `/0`")]
    BadDatabase,
    /// A `%` not followed by two hex digits in the user part of a URL.
    #[error("a `%` escape in the user part is not followed by two hex digits")]
    BadEscape,
    /// More than one `@` before a URL's query: which one ends the user part cannot be told.
    #[error(
        "more than one `@` before the host: write an `@` in the user name or password as `%40`"
    )]
    SeveralAts,
}

fn unknown_option(key: Option<&str>, suggestion: Option<&str>) -> String {
    let mut text = match key {
        Some(key) => format!("unknown option `{key}`"),
        None => "unknown option (its key is not shown: it does not look like an option \
                 name and may be a secret)"
            .to_owned(),
    };
    match suggestion {
        Some(suggestion) => text.push_str(&format!("; did you mean `{suggestion}`?")),
        None => text.push_str(": StackExchange.Redis knows no such option"),
    }
    text
}

impl ConnectionString {
    /// Parses either syntax: a string that starts with `scheme://` is a URL, anything else is
    /// StackExchange syntax.
    pub fn parse(input: &str) -> Result<ConnectionString, ConnectionStringError> {
        let leading = input.len() - input.trim_start().len();
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(err(ConnectionStringErrorKind::Empty, 0));
        }
        match url_scheme(trimmed) {
            Some(scheme) => parse_url(trimmed, scheme, leading),
            None => parse_stackexchange(input),
        }
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectionString::parse(s)
    }
}

impl fmt::Display for ConnectionString {
    /// The endpoint, never the key: `rediss://host:6380/0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.endpoint, f)
    }
}

fn err(kind: ConnectionStringErrorKind, position: usize) -> ConnectionStringError {
    ConnectionStringError { kind, position }
}

/// The scheme of `input` if it starts with `scheme://` (letters, digits, `+`, `-`, `.`).
fn url_scheme(input: &str) -> Option<&str> {
    let (scheme, _) = input.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// A boolean as StackExchange.Redis reads one (`Format.TryParseBoolean`): `true` / `false`,
/// `yes` / `no`, `on` / `off`, `1` / `0`, in any case.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// What a StackExchange.Redis option does here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    Password,
    User,
    Ssl,
    SslHost,
    DefaultDatabase,
    /// Known to StackExchange.Redis, meaningless here.
    Ignored,
}

/// Every keyword of StackExchange.Redis's `ConfigurationOptions.OptionKeys`, spelt as there;
/// the [module docs](self) say why each ignored one is.
const STACKEXCHANGE_KEYS: &[(&str, Use)] = &[
    ("password", Use::Password),
    ("user", Use::User),
    ("ssl", Use::Ssl),
    ("sslHost", Use::SslHost),
    ("defaultDatabase", Use::DefaultDatabase),
    ("abortConnect", Use::Ignored),
    ("allowAdmin", Use::Ignored),
    ("asyncTimeout", Use::Ignored),
    ("channelPrefix", Use::Ignored),
    ("checkCertificateRevocation", Use::Ignored),
    ("configChannel", Use::Ignored),
    ("configCheckSeconds", Use::Ignored),
    ("connectRetry", Use::Ignored),
    ("connectTimeout", Use::Ignored),
    ("highIntegrity", Use::Ignored),
    ("keepAlive", Use::Ignored),
    ("name", Use::Ignored),
    ("protocol", Use::Ignored),
    ("proxy", Use::Ignored),
    ("resolveDns", Use::Ignored),
    ("sentinelPassword", Use::Ignored),
    ("sentinelUser", Use::Ignored),
    ("serviceName", Use::Ignored),
    ("setlib", Use::Ignored),
    ("sslProtocols", Use::Ignored),
    ("syncTimeout", Use::Ignored),
    ("tcpKeepAlive", Use::Ignored),
    ("tiebreaker", Use::Ignored),
    ("tunnel", Use::Ignored),
    ("version", Use::Ignored),
    // Deprecated; StackExchange.Redis ignores them too.
    ("highPriorityThreads", Use::Ignored),
    ("preserveAsyncOrder", Use::Ignored),
    ("responseTimeout", Use::Ignored),
    ("writeBuffer", Use::Ignored),
];

/// Names other clients use, and the StackExchange keyword that means the same.
const OTHER_CLIENTS_NAMES: &[(&str, &str)] = &[
    ("username", "user"),
    ("pwd", "password"),
    ("passwd", "password"),
    ("tls", "ssl"),
    ("db", "defaultDatabase"),
    ("database", "defaultDatabase"),
];

/// The longest key shown in an error: every keyword is shorter, every base64 access key longer.
const MAX_SHOWN_KEY: usize = 32;

/// The error for a key StackExchange.Redis does not know.
fn unknown_key(key: &str) -> ConnectionStringErrorKind {
    let shown = (key.len() <= MAX_SHOWN_KEY && key.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| key.to_owned());
    ConnectionStringErrorKind::UnknownOption {
        key: shown,
        suggestion: did_you_mean(key),
    }
}

/// The keyword `key` most likely means: another client's name for it, or a keyword within a
/// slip of the keyboard (an edit per three letters, at least one).
fn did_you_mean(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    if let Some(&(_, keyword)) = OTHER_CLIENTS_NAMES.iter().find(|(name, _)| *name == key) {
        return Some(keyword);
    }
    let limit = (key.chars().count() / 3).max(1);
    STACKEXCHANGE_KEYS
        .iter()
        .map(|(keyword, _)| (edit_distance(&key, &keyword.to_ascii_lowercase()), *keyword))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, keyword)| keyword)
}

/// Edits (insertions, deletions, substitutions, swaps of neighbours) that turn `a` into `b`;
/// the optimal string alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows are enough: a swap looks two rows back.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

fn parse_stackexchange(input: &str) -> Result<ConnectionString, ConnectionStringError> {
    let mut host: Option<(String, Option<u16>)> = None;
    let mut tls = None;
    let mut database = 0;
    let mut username = None;
    let mut password = None;
    let mut tls_server_name = None;
    let mut offset = 0;
    for part in input.split(',') {
        let start = offset;
        offset += part.len() + 1;
        let position = start + (part.len() - part.trim_start().len());
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            if host.is_some() {
                return Err(err(ConnectionStringErrorKind::SeveralEndpoints, position));
            }
            let parsed = split_host_port(part)
                .map_err(|e| err(ConnectionStringErrorKind::BadHost(e), position))?;
            host = Some(parsed);
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        if key.is_empty() {
            return Err(err(ConnectionStringErrorKind::EmptyOptionKey, position));
        }
        // `$COMMAND=NAME` renames a command in StackExchange.Redis.
        if key.starts_with('$') {
            continue;
        }
        let Some(&(option, use_)) = STACKEXCHANGE_KEYS
            .iter()
            .find(|(option, _)| option.eq_ignore_ascii_case(key))
        else {
            return Err(err(unknown_key(key), position));
        };
        let bad = |expected| {
            err(
                ConnectionStringErrorKind::BadOptionValue { option, expected },
                position,
            )
        };
        match use_ {
            Use::Password => {
                password = Some(value)
                    .filter(|p| !p.is_empty())
                    .map(SecretString::from)
            }
            Use::User => username = Some(value.to_owned()).filter(|u| !u.is_empty()),
            Use::Ssl => {
                tls = Some(parse_bool(value).ok_or_else(|| {
                    bad("a boolean (`true`, `false`, `yes`, `no`, `on`, `off`, `1` or `0`)")
                })?);
            }
            Use::DefaultDatabase => {
                database = value
                    .parse::<i64>()
                    .ok()
                    .filter(|db| *db >= 0)
                    .ok_or_else(|| bad("a database number"))?;
            }
            Use::SslHost => tls_server_name = Some(value.to_owned()).filter(|h| !h.is_empty()),
            Use::Ignored => {}
        }
    }
    let Some((host, port)) = host else {
        return Err(err(ConnectionStringErrorKind::MissingHost, 0));
    };
    // StackExchange defaults to no TLS; Azure's hosts accept Entra ID only over TLS, and
    // Service Connector always writes `ssl=True`, so a missing `ssl` follows the host.
    let tls = tls.unwrap_or(Service::of_host(&host) != Service::Other);
    let port = port.unwrap_or_else(|| Endpoint::default_port(&host, tls));
    Ok(ConnectionString {
        endpoint: Endpoint {
            host,
            port,
            tls,
            database,
            tls_server_name,
        },
        // Without a password no AUTH is sent, and a user name alone means nothing.
        username: username.filter(|_| password.is_some()),
        password,
        syntax: Syntax::StackExchange,
    })
}

fn parse_url(
    input: &str,
    scheme: &str,
    base: usize,
) -> Result<ConnectionString, ConnectionStringError> {
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "rediss" => true,
        "redis" => false,
        _ => return Err(err(ConnectionStringErrorKind::UnknownScheme, base)),
    };
    let rest_start = scheme.len() + 3;
    let rest = &input[rest_start..];
    // The user part ends at the one `@` before the query or fragment; see the module docs.
    let before_query = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let (userinfo, authority_start) = match before_query.rfind('@') {
        Some(at) => {
            if let Some(first) = before_query[..at].find('@') {
                return Err(err(
                    ConnectionStringErrorKind::SeveralAts,
                    base + rest_start + first,
                ));
            }
            (Some(&rest[..at]), at + 1)
        }
        None => (None, 0),
    };
    let after_user = &rest[authority_start..];
    let authority_len = after_user.find(['/', '?', '#']).unwrap_or(after_user.len());
    let authority = &after_user[..authority_len];
    let authority_pos = base + rest_start + authority_start;
    if authority.is_empty() {
        return Err(err(ConnectionStringErrorKind::MissingHost, authority_pos));
    }
    let (host, port) = split_host_port(authority)
        .map_err(|e| err(ConnectionStringErrorKind::BadHost(e), authority_pos))?;

    let tail = &after_user[authority_len..];
    let path_len = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = &tail[..path_len];
    let path_pos = authority_pos + authority_len;
    let database = match path.strip_prefix('/') {
        None | Some("") => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| err(ConnectionStringErrorKind::BadDatabase, path_pos))?,
    };

    let (username, password) = match userinfo {
        None => (None, None),
        Some(userinfo) => {
            let user_pos = base + rest_start;
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| err(ConnectionStringErrorKind::BadEscape, user_pos))
            };
            // `redis://KEY@host`: a lone user part is taken as the password, so that a key
            // written without its `:` is never shown as a user name.
            let (user, pass) = match userinfo.split_once(':') {
                Some((user, pass)) => (decode(user)?, decode(pass)?),
                None => (String::new(), decode(userinfo)?),
            };
            if pass.is_empty() {
                // `rediss://KEY:@host`: the "user name" is most likely the key.
                (None, None)
            } else {
                (
                    Some(user).filter(|u| !u.is_empty()),
                    Some(SecretString::from(pass)),
                )
            }
        }
    };
    let port = port.unwrap_or_else(|| Endpoint::default_port(&host, tls));
    Ok(ConnectionString {
        endpoint: Endpoint {
            host,
            port,
            tls,
            database,
            tls_server_name: None,
        },
        username,
        password,
        syntax: Syntax::Url,
    })
}

/// Decodes `%XX` escapes; `None` for a `%` without two hex digits or bytes that are not UTF-8.
fn percent_decode(input: &str) -> Option<String> {
    if !input.contains('%') {
        return Some(input.to_owned());
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
