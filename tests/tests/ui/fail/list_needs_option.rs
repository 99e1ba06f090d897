use azure_redis_connect::{AzureRedisConfig, SecretString};

#[derive(AzureRedisConfig)]
#[azure_redis(auth(service_principal, system_identity))]
struct Cache {
    host: String,
    client_id: String,
    tenant_id: Option<String>,
    client_secret: SecretString,
}

fn main() {}
