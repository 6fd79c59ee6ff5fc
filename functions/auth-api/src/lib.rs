//! `auth-api`: sign-in and the caller's own account.
//!
//! | route | what |
//! |---|---|
//! | `POST /auth/token` | password sign-in (JSON or the OAuth2 password form, RFC 6749 §4.3) → access token |
//! | `POST /auth/change-password` | change one's own password; every earlier token stops working |
//! | `GET /users/me` | the caller's account |
//! | `GET /users/me/tenants` | the caller's roles per tenant |

mod routes;
mod tokens;

pub use routes::{openapi, router, routes};
