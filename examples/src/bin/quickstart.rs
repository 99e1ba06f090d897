//! Reads the Service Connector variables of this process and says what it would connect to.
//!
//! ```text
//! AZURE_REDIS_HOST=shop.redis.cache.windows.net AZURE_REDIS_CLIENTID=... \
//!     cargo run -p azure-redis-connect-examples --bin quickstart
//! ```

use std::process::ExitCode;

use azure_redis_connect::{AzureRedisConfig, SecretString};

/// Any Service Connector auth type: the variables that are set decide.
#[derive(AzureRedisConfig, Debug)]
struct Cache {
    host: Option<String>,
    port: Option<u16>,
    ssl: Option<bool>,
    database: Option<u32>,
    client_id: Option<String>,
    tenant_id: Option<String>,
    client_secret: Option<SecretString>,
    password: Option<SecretString>,
    connection_string: Option<SecretString>,
}

fn main() -> ExitCode {
    println!("Variables read:");
    for variable in Cache::variables() {
        println!("  {variable}");
    }
    let config = match Cache::from_env().and_then(|cache| cache.connection_config()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    println!("Auth:     {}", config.auth);
    println!("Endpoint: {}", config.endpoint);
    ExitCode::SUCCESS
}
