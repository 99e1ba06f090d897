// The crate reached through another path (`crate = "..."`, as a facade crate re-exporting it
// would write): the misspelt auth type is still the only error, because the stand-in methods
// the derive emits after an error go through the given path too.
mod facade {
    pub use azure_redis_connect as redis_on_azure;
}

use facade::redis_on_azure::AzureRedisConfig;

#[derive(AzureRedisConfig)]
#[azure_redis(crate = "facade::redis_on_azure", auth = "sytem_identity")]
struct Cache {
    host: String,
}

fn main() {
    let cache = Cache::from_env().unwrap();
    let _endpoint = cache.endpoint();
    let _vars = Cache::variables();
}
