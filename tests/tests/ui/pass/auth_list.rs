use azure_redis_connect::{Auth, AuthKind, AzureRedisConfig, SecretString};

/// Managed identity in Azure, the developer's `az` login on a laptop.
#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth(system_identity, developer_tools))]
struct Cache {
    host: String,
}

/// A user-assigned identity in production, a service principal in CI.
#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "user_identity, service_principal")]
struct Either {
    host: String,
    client_id: String,
    tenant_id: Option<String>,
    client_secret: Option<SecretString>,
}

fn main() {
    let cache = Cache::from_vars([("AZURE_REDIS_HOST", "shop.redis.cache.windows.net")]).unwrap();
    let config = cache.connection_config().unwrap();
    assert_eq!(config.auth_kinds, [AuthKind::SystemIdentity, AuthKind::DeveloperTools]);
    assert!(matches!(config.auth, Auth::FirstOf(_)));

    let vars = [("AZURE_REDIS_HOST", "h"), ("AZURE_REDIS_CLIENTID", "c")];
    let either = Either::from_vars(vars).unwrap();
    assert!(matches!(either.auth().unwrap(), Auth::UserIdentity { .. }));
    let with_secret = vars.into_iter().chain([
        ("AZURE_REDIS_TENANTID", "t"),
        ("AZURE_REDIS_CLIENTSECRET", "s"),
    ]);
    let either = Either::from_vars(with_secret).unwrap();
    assert!(matches!(either.auth().unwrap(), Auth::ServicePrincipal { .. }));
}
