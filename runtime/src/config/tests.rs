//! Table-driven tests of auth resolution: detection, lists of auth types, endpoints.

use secrecy::ExposeSecret;

use super::*;

/// An access key as Azure writes one: base64 with `/`, `+` and `=`.
const KEY: &str = "k3y/with+slash=and==";

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
