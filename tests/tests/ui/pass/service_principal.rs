use azure_redis_connect::{Auth, AzureRedisConfig, ExposeSecret, SecretString};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "service_principal")]
struct Cache {
    host: String,
    client_id: String,
    tenant_id: String,
    client_secret: SecretString,
    #[azure_redis(default = 6380)]
    port: u16,
    #[azure_redis(env = "LISTEN_ADDR", default = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
}

fn main() {
    let cache = Cache::from_vars([
        ("AZURE_REDIS_HOST", "shop.redis.cache.windows.net"),
        ("AZURE_REDIS_CLIENTID", "c1"),
        ("AZURE_REDIS_TENANTID", "t1"),
        ("AZURE_REDIS_CLIENTSECRET", "s3cr3t"),
    ])
    .unwrap();
    assert_eq!(cache.port, 6380);
    assert_eq!(cache.listen.port(), 8080);
    let Auth::ServicePrincipal { tenant_id, client_id, client_secret } = cache.auth().unwrap() else {
        panic!("expected a service principal");
    };
    assert_eq!((tenant_id.as_str(), client_id.as_str()), ("t1", "c1"));
    assert_eq!(client_secret.expose_secret(), "s3cr3t");
}
