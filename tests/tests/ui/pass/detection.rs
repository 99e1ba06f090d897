use std::path::PathBuf;

use azure_redis_connect::{AuthKind, AzureRedisConfig, SecretString};

/// No `auth`: the auth type follows the variables that are set.
#[derive(AzureRedisConfig, Debug)]
struct Cache {
    host: Option<String>,
    client_id: Option<String>,
    tenant_id: Option<String>,
    client_secret: Option<SecretString>,
    federated_token_file: Option<PathBuf>,
    password: Option<SecretString>,
    connection_string: Option<SecretString>,
}

fn kinds(vars: &[(&str, &str)]) -> Vec<AuthKind> {
    let cache = Cache::from_vars(vars.iter().copied()).unwrap();
    cache.connection_config().unwrap().auth_kinds
}

fn main() {
    use AuthKind::*;
    let host = ("AZURE_REDIS_HOST", "h.redis.cache.windows.net");
    let client = ("AZURE_REDIS_CLIENTID", "c");
    assert_eq!(kinds(&[host]), [SystemIdentity]);
    assert_eq!(kinds(&[host, client]), [UserIdentity]);
    assert_eq!(kinds(&[host, client, ("AZURE_FEDERATED_TOKEN_FILE", "/t")]), [WorkloadIdentity]);
    assert_eq!(
        kinds(&[host, client, ("AZURE_REDIS_TENANTID", "t"), ("AZURE_REDIS_CLIENTSECRET", "s")]),
        [ServicePrincipal]
    );
    assert_eq!(kinds(&[host, ("AZURE_REDIS_PASSWORD", "k")]), [AccessKey]);
    assert_eq!(
        kinds(&[host, ("AZURE_REDIS_CONNECTIONSTRING", "h:6380,password=k,ssl=True")]),
        [ConnectionString]
    );
    let error = Cache::from_vars([("OTHER", "x")]).unwrap_err();
    assert!(error.to_string().contains("no auth type can be used"), "{error}");
}
