//! Web framework integration (features `axum` and `actix-web`).
