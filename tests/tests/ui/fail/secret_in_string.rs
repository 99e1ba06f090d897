use azure_redis_connect::AzureRedisConfig;

#[derive(AzureRedisConfig)]
#[azure_redis(auth = "service_principal")]
struct Cache {
    host: String,
    client_id: String,
    tenant_id: String,
    client_secret: String,
}

#[derive(AzureRedisConfig)]
#[azure_redis(auth = "access_key")]
struct Keyed {
    host: String,
    password: Option<String>,
}

fn main() {}
