//! Example services built on azure-redis-connect; each is a binary under `src/bin/`.
