// The crate reached through another path, as a facade crate re-exporting it would: with
// `crate = "..."` the generated code names that path only.
mod facade {
    pub use azure_redis_connect as redis_on_azure;
}

use facade::redis_on_azure::{Auth, AzureRedisConfig};

#[derive(AzureRedisConfig, Debug)]
#[azure_redis(crate = "facade::redis_on_azure", auth = "user_identity")]
struct Cache {
    host: String,
    client_id: String,
}

fn main() {
    let cache = Cache::from_vars([
        ("AZURE_REDIS_HOST", "shop.redis.cache.windows.net"),
        ("AZURE_REDIS_CLIENTID", "4b1e7e4c-0000-0000-0000-000000000001"),
    ])
    .unwrap();
    let Auth::UserIdentity { client_id } = cache.auth().unwrap() else {
        panic!("expected a user-assigned identity");
    };
    assert_eq!(client_id, "4b1e7e4c-0000-0000-0000-000000000001");
    assert_eq!(cache.endpoint().unwrap().port, 6380);
}
