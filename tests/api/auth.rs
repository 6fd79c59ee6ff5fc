//! `auth-api`: sign-in, throttling, tokens, password changes, the caller's account.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use integration_tests::{JWT_SECRET, SUPER_ADMIN, SUPER_ADMIN_PASSWORD, TestApp, USER_PASSWORD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims JSON")
}

#[tokio::test]
async fn json_and_oauth2_form_sign_ins_issue_bearer_tokens_with_roles() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    app.create_user(
        &sa,
        "checker",
        &[("credit_card", "approver"), ("credit_card", "read_only")],
    )
    .await;

    let json_login = app.try_login("checker", USER_PASSWORD).await;
    assert_eq!(json_login.status, StatusCode::OK);
    assert_eq!(json_login.body["token_type"], "bearer");
    assert_eq!(json_login.body["expires_in"], 900);

    let form = Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            "grant_type=password&username=checker&password=user+password+123&scope=",
        ))
        .expect("request");
    let form_login = app.send(form).await;
    assert_eq!(form_login.status, StatusCode::OK, "{:?}", form_login.body);

    let claims = claims_of(form_login.body["access_token"].as_str().expect("token"));
    assert_eq!(claims["sub"], "checker");
    assert_eq!(claims["iss"], "offer-management-platform");
    assert_eq!(claims["aud"], "offer-management-api");
    assert_eq!(claims["is_super_admin"], false);
    assert_eq!(
        claims["tenants"],
        json!({"credit_card": ["approver", "read_only"]})
    );
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 900);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let wrong_password = app.try_login(SUPER_ADMIN, "not the password at all").await;
    let unknown_user = app
        .try_login("nobody.here", "not the password at all")
        .await;
    let malformed_user = app
        .try_login("Not A Username!", "not the password at all")
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    for other in [&unknown_user, &malformed_user] {
        assert_eq!(other.status, wrong_password.status);
        assert_eq!(other.body, wrong_password.body);
    }
    assert_eq!(
        wrong_password.body,
        json!({"type": "about:blank", "title": "Unauthorized", "status": 401,
               "detail": "invalid username or password"})
    );
}

fn retry_after(response: &integration_tests::TestResponse) -> u64 {
    response.headers[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
}

const ATTACKER: &str = "203.0.113.66";
const OWNER: &str = "198.51.100.7";

#[tokio::test]
async fn failures_from_one_client_never_lock_the_account_for_others() {
    let app = TestApp::spawn().await;
    // Five wrong guesses from the attacker's address: answered 401 without delay.
    for attempt in 1..=5 {
        let response = app
            .try_login_from(SUPER_ADMIN, "wrong password guess", ATTACKER)
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    // Then that (username, client) pair is slowed down: even the right password waits.
    let slowed = app
        .try_login_from(SUPER_ADMIN, SUPER_ADMIN_PASSWORD, ATTACKER)
        .await;
    assert_eq!(slowed.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(slowed.content_type(), "application/problem+json");
    assert!(
        (1..=2).contains(&retry_after(&slowed)),
        "{:?}",
        slowed.headers
    );
    // The super admin, from elsewhere, is not locked out.
    let owner = app
        .try_login_from(SUPER_ADMIN, SUPER_ADMIN_PASSWORD, OWNER)
        .await;
    assert_eq!(owner.status, StatusCode::OK, "{:?}", owner.body);

    // Twenty failures refuse the pair for the rest of the window; the owner still signs in.
    app.db()
        .await
        .execute(
            "update login_failures set failures = 20, last_failure_at = now() where kind = 'pair'",
            &[],
        )
        .await
        .expect("twenty failures");
    let refused = app
        .try_login_from(SUPER_ADMIN, SUPER_ADMIN_PASSWORD, ATTACKER)
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!((890..=901).contains(&retry_after(&refused)));
    assert_eq!(
        app.try_login_from(SUPER_ADMIN, SUPER_ADMIN_PASSWORD, OWNER)
            .await
            .status,
        StatusCode::OK
    );
    // Once the window has passed, the pair is heard again.
    app.db()
        .await
        .execute(
            "update login_failures set last_failure_at = now() - interval '16 minutes'",
            &[],
        )
        .await
        .expect("age the counters");
    assert_eq!(
        app.try_login_from(SUPER_ADMIN, SUPER_ADMIN_PASSWORD, ATTACKER)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_account_ceiling_spares_clients_without_recent_failures() {
    let app = TestApp::spawn().await;
    let failed = app
        .try_login_from(SUPER_ADMIN, "wrong password guess", ATTACKER)
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    // A distributed attack has pushed the account over its ceiling.
    app.db()
        .await
        .execute(
            "update login_failures set failures = 1000 where kind = 'account'",
            &[],
        )
        .await
        .expect("ceiling");
    let attacker = app
        .try_login_from(SUPER_ADMIN, SUPER_ADMIN_PASSWORD, ATTACKER)
        .await;
    assert_eq!(attacker.status, StatusCode::TOO_MANY_REQUESTS);
    let owner = app
        .try_login_from(SUPER_ADMIN, SUPER_ADMIN_PASSWORD, OWNER)
        .await;
    assert_eq!(owner.status, StatusCode::OK, "{:?}", owner.body);
}

#[tokio::test]
async fn a_client_spraying_usernames_is_refused_and_others_are_not() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_user(&sa, "sprayed", &[]).await;
    let failed = app
        .try_login_from("someone.else", "Winter2026!", ATTACKER)
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    app.db()
        .await
        .execute(
            "update login_failures set failures = 100 where kind = 'client'",
            &[],
        )
        .await
        .expect("spray");
    // Any username from that address is refused, the right password included.
    let sprayer = app.try_login_from("sprayed", USER_PASSWORD, ATTACKER).await;
    assert_eq!(sprayer.status, StatusCode::TOO_MANY_REQUESTS);
    let owner = app.try_login_from("sprayed", USER_PASSWORD, OWNER).await;
    assert_eq!(owner.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_usernames_are_counted_and_answered_like_known_ones() {
    let app = TestApp::spawn().await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..6 {
        let before = app.state.passwords.verifications();
        known.push((
            app.try_login_from(SUPER_ADMIN, "wrong password guess", "192.0.2.1")
                .await,
            app.state.passwords.verifications() - before,
        ));
        let before = app.state.passwords.verifications();
        unknown.push((
            app.try_login_from("nobody.here", "wrong password guess", "192.0.2.2")
                .await,
            app.state.passwords.verifications() - before,
        ));
    }
    for (attempt, ((k, k_work), (u, u_work))) in known.iter().zip(&unknown).enumerate() {
        assert_eq!(k.status, u.status, "attempt {attempt}");
        assert_eq!(k.body, u.body, "attempt {attempt}");
        let names = |r: &integration_tests::TestResponse| {
            let mut names: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
            names.sort();
            names
        };
        assert_eq!(names(k), names(u), "attempt {attempt}");
        assert_eq!(
            k.headers.get(header::RETRY_AFTER),
            u.headers.get(header::RETRY_AFTER),
            "attempt {attempt}"
        );
        // The same work: one argon2 verification per heard attempt, none when throttled.
        let expected = if attempt < 5 { 1 } else { 0 };
        assert_eq!(
            (*k_work, *u_work),
            (expected, expected),
            "attempt {attempt}"
        );
    }
    assert_eq!(known[5].0.status, StatusCode::TOO_MANY_REQUESTS);
    // Both were counted the same way: per pair, per client, per username.
    let rows: Vec<(String, i32)> = app
        .db()
        .await
        .query(
            "select kind, failures from login_failures order by kind, failures",
            &[],
        )
        .await
        .expect("counters")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [
            ("account".to_owned(), 5),
            ("account".to_owned(), 5),
            ("client".to_owned(), 5),
            ("client".to_owned(), 5),
            ("pair".to_owned(), 5),
            ("pair".to_owned(), 5),
        ]
    );
}

#[tokio::test]
async fn sign_in_answers_are_never_cached() {
    let app = TestApp::spawn().await;
    for response in [
        app.try_login(SUPER_ADMIN, SUPER_ADMIN_PASSWORD).await,
        app.try_login(SUPER_ADMIN, "not the password").await,
    ] {
        assert_eq!(response.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(response.headers["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn a_token_minted_a_century_ahead_does_not_survive_a_password_reset() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_user(&sa, "target.user", &[]).await;
    let now = chrono::Utc::now();
    let century_ms = 100 * 365 * 86_400_000_i64;
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "target.user", "iss": "offer-management-platform",
                "aud": "offer-management-api", "iat": now.timestamp(),
                "exp": now.timestamp() + 600, "iat_ms": now.timestamp_millis() + century_ms,
                "is_super_admin": false, "tenants": {}}),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign");
    let reset = app
        .post(
            "/sa/users/target.user/change-password",
            &sa,
            json!({"new_password": "a fresh password 42"}),
        )
        .await;
    assert!(reset.status.is_success(), "{:?}", reset.body);
    assert_eq!(
        app.get("/users/me", &forged).await.status,
        StatusCode::UNAUTHORIZED
    );
    let too_long = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "target.user", "iss": "offer-management-platform",
                "aud": "offer-management-api", "iat": now.timestamp(),
                "exp": now.timestamp() + 30 * 86_400, "iat_ms": now.timestamp_millis(),
                "is_super_admin": false, "tenants": {}}),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign");
    assert_eq!(
        app.get("/users/me", &too_long).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn passwords_are_compared_exactly_as_received() {
    let app = TestApp::spawn().await;
    app.insert_user("unicode.user", "  Ünïcödé pässwörd  ", false)
        .await;
    app.login("unicode.user", "  Ünïcödé pässwörd  ").await;
    for near_miss in [
        "Ünïcödé pässwörd",
        "  ünïcödé pässwörd  ",
        "  UNÏCÖDÉ PÄSSWÖRD  ",
    ] {
        let response = app.try_login("unicode.user", near_miss).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{near_miss:?}");
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_a_bearer_challenge() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str, exp: i64| {
        json!({"sub": SUPER_ADMIN, "iss": iss, "aud": aud, "iat": now, "exp": exp,
               "iat_ms": now * 1000, "is_super_admin": true, "tenants": {}})
    };
    let sign = |alg: Algorithm, claims: Value, key: &str| {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .expect("sign")
    };
    let good = app.super_admin_token().await;
    let (head, _) = good.split_once('.').expect("jwt");
    let cases = [
        ("no token", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        ("alg none", Some(format!("{head}.e30."))),
        (
            "HS512",
            Some(sign(
                Algorithm::HS512,
                claims(
                    "offer-management-platform",
                    "offer-management-api",
                    now + 600,
                ),
                JWT_SECRET,
            )),
        ),
        (
            "wrong key",
            Some(sign(
                Algorithm::HS256,
                claims(
                    "offer-management-platform",
                    "offer-management-api",
                    now + 600,
                ),
                "a-different-secret-of-enough-length-000",
            )),
        ),
        (
            "expired",
            Some(sign(
                Algorithm::HS256,
                claims(
                    "offer-management-platform",
                    "offer-management-api",
                    now - 120,
                ),
                JWT_SECRET,
            )),
        ),
        (
            "wrong issuer",
            Some(sign(
                Algorithm::HS256,
                claims("someone-else", "offer-management-api", now + 600),
                JWT_SECRET,
            )),
        ),
        (
            "wrong audience",
            Some(sign(
                Algorithm::HS256,
                claims("offer-management-platform", "another-api", now + 600),
                JWT_SECRET,
            )),
        ),
        (
            "tampered",
            Some({
                let parts: Vec<&str> = good.split('.').collect();
                let forged = sign(
                    Algorithm::HS256,
                    claims(
                        "offer-management-platform",
                        "offer-management-api",
                        now + 600,
                    ),
                    "x".repeat(40).as_str(),
                );
                let forged_payload = forged.split('.').nth(1).expect("payload");
                format!("{}.{}.{}", parts[0], forged_payload, parts[2])
            }),
        ),
    ];
    for (case, token) in cases {
        let response = app
            .call(Method::GET, "/users/me", token.as_deref(), None)
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(
            response.headers[header::WWW_AUTHENTICATE],
            "Bearer",
            "{case}"
        );
        assert_eq!(
            response.content_type(),
            "application/problem+json",
            "{case}"
        );
    }
    assert_eq!(app.get("/users/me", &good).await.status, StatusCode::OK);
}

#[tokio::test]
async fn users_me_and_my_tenants_describe_the_caller() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    app.create_tenant(&sa, "loan").await;
    app.create_user(
        &sa,
        "maker",
        &[("loan", "create"), ("credit_card", "admin")],
    )
    .await;
    let token = app.login("maker", USER_PASSWORD).await;

    let me = app.get("/users/me", &token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], "maker");
    assert_eq!(me.body["is_super_admin"], false);
    assert!(me.body.get("password_hash").is_none());

    let tenants = app.get("/users/me/tenants", &token).await;
    assert_eq!(
        tenants.body,
        json!([{"tenant_name": "credit_card", "roles": ["admin"]},
               {"tenant_name": "loan", "roles": ["create"]}])
    );
}

#[tokio::test]
async fn changing_the_password_revokes_earlier_tokens() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_user(&sa, "rotator", &[]).await;
    let old_token = app.login("rotator", USER_PASSWORD).await;

    let wrong_current = app
        .post(
            "/auth/change-password",
            &old_token,
            json!({"current_password": "not my password", "new_password": "brand new password 1"}),
        )
        .await;
    assert_eq!(wrong_current.status, StatusCode::UNAUTHORIZED);

    let weak = app
        .post(
            "/auth/change-password",
            &old_token,
            json!({"current_password": USER_PASSWORD, "new_password": "password1234"}),
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.body["errors"][0]["pointer"], "/new_password");

    let changed = app
        .post(
            "/auth/change-password",
            &old_token,
            json!({"current_password": USER_PASSWORD, "new_password": "brand new password 1"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);

    assert_eq!(
        app.get("/users/me", &old_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.try_login("rotator", USER_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let new_token = app.login("rotator", "brand new password 1").await;
    assert_eq!(
        app.get("/users/me", &new_token).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn removed_roles_and_deleted_users_stop_working_on_the_next_request() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    app.create_user(&sa, "leaver", &[("credit_card", "approver")])
        .await;
    let token = app.login("leaver", USER_PASSWORD).await;

    let removed = app
        .call(
            Method::DELETE,
            "/sa/user-tenant-roles",
            Some(&sa),
            Some(json!({"username": "leaver", "tenant_name": "credit_card", "role": "approver"})),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    // The token still claims the role; the server does not believe it.
    assert_eq!(
        claims_of(&token)["tenants"],
        json!({"credit_card": ["approver"]})
    );
    assert_eq!(app.get("/users/me/tenants", &token).await.body, json!([]));

    let deleted = app.delete("/sa/users/leaver", &sa).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/users/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sign_in_bodies_are_checked() {
    let app = TestApp::spawn().await;
    let extra = app
        .call(
            Method::POST,
            "/auth/token",
            None,
            Some(json!({"username": SUPER_ADMIN, "password": "x", "is_super_admin": true})),
        )
        .await;
    assert_eq!(extra.status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("hello"))
        .expect("request");
    assert_eq!(
        app.send(text).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let malformed = Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"username\": "))
        .expect("request");
    let response = app.send(malformed).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.content_type(), "application/problem+json");
}
