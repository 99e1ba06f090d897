use std::path::PathBuf;

use azure_redis_connect::{Auth, AzureRedisConfig};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(auth = "workload_identity")]
struct Cache {
    host: String,
    client_id: String,
    #[azure_redis(env = "AZURE_TENANT_ID")]
    tenant_id: Option<String>,
    federated_token_file: Option<PathBuf>,
}

fn main() {
    let cache = Cache::from_vars([
        ("AZURE_REDIS_HOST", "shop.redis.cache.windows.net"),
        ("AZURE_REDIS_CLIENTID", "c1"),
        ("AZURE_TENANT_ID", "t1"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"),
    ])
    .unwrap();
    let Auth::WorkloadIdentity { client_id, tenant_id, token_file } = cache.auth().unwrap() else {
        panic!("expected workload identity");
    };
    assert_eq!(client_id, "c1");
    assert_eq!(tenant_id.as_deref(), Some("t1"));
    assert!(token_file.unwrap().ends_with("azure-identity-token"));
}
