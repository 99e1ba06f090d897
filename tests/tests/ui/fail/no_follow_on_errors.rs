use azure_redis_connect::AzureRedisConfig;

// The misspelt auth type is the only error: the generated methods still exist, so the code
// below does not add errors of its own.
#[derive(AzureRedisConfig)]
#[azure_redis(auth = "sytem_identity")]
struct Cache {
    host: String,
}

fn main() {
    let cache = Cache::from_env().unwrap();
    let _endpoint = cache.endpoint();
    let _vars = Cache::variables();
}
