//! `admin-api`: tenants, users and role assignments, super admin only.

use axum::http::{Method, StatusCode, header};
use integration_tests::{SUPER_ADMIN, TestApp, USER_PASSWORD};
use serde_json::{Value, json};

#[tokio::test]
async fn only_super_admins_reach_the_sa_routes() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    app.create_user(&sa, "tenant.admin", &[("credit_card", "admin")])
        .await;
    let tenant_admin = app.login("tenant.admin", USER_PASSWORD).await;

    let routes: [(Method, &str, Option<Value>); 12] = [
        (Method::GET, "/sa/tenants", None),
        (Method::POST, "/sa/tenants", Some(json!({"name": "loan"}))),
        (Method::GET, "/sa/tenants/credit_card", None),
        (
            Method::PUT,
            "/sa/tenants/credit_card",
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, "/sa/tenants/credit_card", None),
        (Method::GET, "/sa/tenants/credit_card/roles", None),
        (Method::GET, "/sa/users", None),
        (
            Method::POST,
            "/sa/users",
            Some(json!({"username": "x1", "password": USER_PASSWORD})),
        ),
        (Method::GET, "/sa/users/tenant.admin", None),
        (
            Method::POST,
            "/sa/users/tenant.admin/change-password",
            Some(json!({"new_password": "another password 9"})),
        ),
        (Method::GET, "/sa/user-tenant-roles", None),
        (
            Method::POST,
            "/sa/user-tenant-roles",
            Some(
                json!({"username": "tenant.admin", "tenant_name": "credit_card", "role": "create"}),
            ),
        ),
    ];
    for (method, path, body) in routes {
        let anonymous = app.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let forbidden = app
            .call(method.clone(), path, Some(&tenant_admin), body)
            .await;
        assert_eq!(forbidden.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(forbidden.content_type(), "application/problem+json");
    }
    // Nothing was changed by the refused calls.
    let roles = app
        .get("/sa/user-tenant-roles?username=tenant.admin", &sa)
        .await;
    assert_eq!(roles.body.as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get("/sa/tenants/credit_card", &sa).await.body["description"],
        Value::Null
    );
}

#[tokio::test]
async fn creating_a_tenant_creates_its_four_default_roles() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    let created = app
        .post(
            "/sa/tenants",
            &sa,
            json!({"name": "credit_card", "description": "Credit cards"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.headers[header::LOCATION], "/sa/tenants/credit_card");
    assert_eq!(created.body["name"], "credit_card");
    assert_eq!(created.body["created_by"], SUPER_ADMIN);
    let roles: Vec<&str> = created.body["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| r["role"].as_str().expect("name"))
        .collect();
    assert_eq!(roles, ["admin", "approver", "create", "read_only"]);

    let listed = app.get("/sa/tenants/credit_card/roles", &sa).await;
    assert_eq!(listed.body, created.body["roles"]);
    assert_eq!(
        listed.body[3],
        json!({"role": "read_only", "description": "Reads offers and campaigns",
               "permissions": ["offer.read", "campaign.read"], "is_default": true})
    );
}

#[tokio::test]
async fn tenant_input_is_validated() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;

    let duplicate = app
        .post("/sa/tenants", &sa, json!({"name": "credit_card"}))
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(
        duplicate.body["detail"],
        "tenant credit_card already exists"
    );

    for bad in [
        "Credit",
        "1loan",
        "x",
        "loan-cards",
        "a'; drop table tenants; --",
    ] {
        let response = app.post("/sa/tenants", &sa, json!({"name": bad})).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(response.body["errors"][0]["pointer"], "/name", "{bad}");
    }
    let smuggled = app
        .post(
            "/sa/tenants",
            &sa,
            json!({"name": "loan", "created_by": "someone"}),
        )
        .await;
    assert_eq!(smuggled.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        smuggled.body["detail"]
            .as_str()
            .expect("detail")
            .contains("created_by")
    );
    assert_eq!(
        app.get("/sa/tenants/loan", &sa).await.status,
        StatusCode::NOT_FOUND
    );

    let bad_path = app.get("/sa/tenants/Not%20Valid", &sa).await;
    assert_eq!(bad_path.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tenants_are_listed_read_updated_and_deleted() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    for name in ["loan", "credit_card", "mortgage"] {
        app.create_tenant(&sa, name).await;
    }
    let names = |body: &Value| -> Vec<String> {
        body.as_array()
            .expect("list")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(
        names(&app.get("/sa/tenants", &sa).await.body),
        ["credit_card", "loan", "mortgage"]
    );
    assert_eq!(
        names(&app.get("/sa/tenants?limit=1&offset=1", &sa).await.body),
        ["loan"]
    );
    // Trailing slashes are tolerated.
    assert_eq!(app.get("/sa/tenants/", &sa).await.status, StatusCode::OK);

    let updated = app
        .put("/sa/tenants/loan", &sa, json!({"description": "Loans"}))
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.body["description"], "Loans");
    let untouched = app.put("/sa/tenants/loan", &sa, json!({})).await;
    assert_eq!(untouched.body["description"], "Loans");
    let cleared = app
        .put("/sa/tenants/loan", &sa, json!({"description": null}))
        .await;
    assert_eq!(cleared.body["description"], Value::Null);

    let deleted = app.delete("/sa/tenants/mortgage", &sa).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = app.delete("/sa/tenants/mortgage", &sa).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/sa/tenants/mortgage", &sa).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn list_pagination_is_bounded() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    for path in ["/sa/tenants", "/sa/users", "/sa/user-tenant-roles"] {
        assert_eq!(
            app.get(&format!("{path}?limit=200"), &sa).await.status,
            StatusCode::OK
        );
        for bad in ["limit=201", "limit=0", "limit=-1", "offset=-5", "limit=ten"] {
            let response = app.get(&format!("{path}?{bad}"), &sa).await;
            assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path}?{bad}");
            assert_eq!(response.content_type(), "application/problem+json");
        }
    }
}

#[tokio::test]
async fn deleting_a_tenant_with_role_assignments_removes_them() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    app.create_user(
        &sa,
        "member",
        &[("credit_card", "create"), ("credit_card", "approver")],
    )
    .await;
    let token = app.login("member", USER_PASSWORD).await;

    let deleted = app.delete("/sa/tenants/credit_card", &sa).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/sa/user-tenant-roles?username=member", &sa)
            .await
            .body,
        json!([])
    );
    assert_eq!(app.get("/users/me/tenants", &token).await.body, json!([]));
}

#[tokio::test]
async fn users_are_created_read_updated_and_deleted() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    let created = app
        .post(
            "/sa/users",
            &sa,
            json!({"username": "maker", "password": USER_PASSWORD, "full_name": "Mia Maker"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.headers[header::LOCATION], "/sa/users/maker");
    assert_eq!(created.body["full_name"], "Mia Maker");
    assert_eq!(created.body["is_super_admin"], false);
    assert!(created.body.get("password").is_none() && created.body.get("password_hash").is_none());

    let duplicate = app
        .post(
            "/sa/users",
            &sa,
            json!({"username": "maker", "password": USER_PASSWORD}),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);

    let cases = [
        (
            json!({"username": "Maker", "password": USER_PASSWORD}),
            "/username",
        ),
        (
            json!({"username": "short.pw", "password": "too short"}),
            "/password",
        ),
        (
            json!({"username": "common.pw", "password": "qwerty123456"}),
            "/password",
        ),
        (
            json!({"username": "long.pw", "password": "x".repeat(129)}),
            "/password",
        ),
    ];
    for (body, pointer) in cases {
        let response = app.post("/sa/users", &sa, body.clone()).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(response.body["errors"][0]["pointer"], pointer, "{body}");
    }
    let smuggled = app
        .post(
            "/sa/users",
            &sa,
            json!({"username": "sneaky", "password": USER_PASSWORD, "tokens_valid_after": 0}),
        )
        .await;
    assert_eq!(smuggled.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get("/sa/users/sneaky", &sa).await.status,
        StatusCode::NOT_FOUND
    );

    let promoted = app
        .put(
            "/sa/users/maker",
            &sa,
            json!({"is_super_admin": true, "full_name": null}),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK);
    assert_eq!(promoted.body["is_super_admin"], true);
    assert_eq!(promoted.body["full_name"], Value::Null);

    let admins = app.get("/sa/users?is_super_admin=true", &sa).await;
    let names: Vec<&str> = admins
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|u| u["username"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["maker", SUPER_ADMIN]);

    let deleted = app.delete("/sa/users/maker", &sa).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/sa/users/maker", &sa).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_last_super_admin_cannot_be_demoted_or_deleted() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    let demote = app
        .put(
            &format!("/sa/users/{SUPER_ADMIN}"),
            &sa,
            json!({"is_super_admin": false}),
        )
        .await;
    assert_eq!(demote.status, StatusCode::CONFLICT);
    let own = app.delete(&format!("/sa/users/{SUPER_ADMIN}"), &sa).await;
    assert_eq!(own.status, StatusCode::CONFLICT);
    assert_eq!(app.get("/users/me", &sa).await.body["is_super_admin"], true);
}

#[tokio::test]
async fn a_super_admin_cannot_demote_or_reset_the_password_of_their_own_account() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    // Another super admin exists, so the last-super-admin rule does not apply.
    app.insert_user("second.admin", USER_PASSWORD, true).await;
    let demote = app
        .put(
            &format!("/sa/users/{SUPER_ADMIN}"),
            &sa,
            json!({"is_super_admin": false}),
        )
        .await;
    assert_eq!(demote.status, StatusCode::CONFLICT, "{:?}", demote.body);
    let reset = app
        .post(
            &format!("/sa/users/{SUPER_ADMIN}/change-password"),
            &sa,
            json!({"new_password": "reset without the current one"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::CONFLICT, "{:?}", reset.body);
    // Nothing changed: the token still works and the account is still a super admin.
    assert_eq!(app.get("/users/me", &sa).await.body["is_super_admin"], true);
    // Another super admin may do both.
    let other = app.login("second.admin", USER_PASSWORD).await;
    let demoted = app
        .put(
            &format!("/sa/users/{SUPER_ADMIN}"),
            &other,
            json!({"is_super_admin": false}),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK, "{:?}", demoted.body);
}

#[tokio::test]
async fn deleting_a_user_with_role_assignments_works() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    app.create_tenant(&sa, "loan").await;
    app.create_user(
        &sa,
        "busy",
        &[("credit_card", "admin"), ("loan", "read_only")],
    )
    .await;
    let deleted = app.delete("/sa/users/busy", &sa).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    assert_eq!(
        app.get("/sa/user-tenant-roles?username=busy", &sa)
            .await
            .body,
        json!([])
    );
}

#[tokio::test]
async fn a_super_admin_can_set_a_password_which_revokes_tokens() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_user(&sa, "forgetful", &[]).await;
    let token = app.login("forgetful", USER_PASSWORD).await;
    let set = app
        .post(
            "/sa/users/forgetful/change-password",
            &sa,
            json!({"new_password": "reset by the admin 1"}),
        )
        .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/users/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.login("forgetful", "reset by the admin 1").await;
    let missing = app
        .post(
            "/sa/users/ghost/change-password",
            &sa,
            json!({"new_password": "reset by the admin 1"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn roles_are_assigned_listed_and_removed() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    app.create_tenant(&sa, "loan").await;
    app.create_user(&sa, "alice", &[]).await;
    app.create_user(&sa, "bob", &[("loan", "approver")]).await;

    let assign = json!({"username": "alice", "tenant_name": "credit_card", "roles": ["create", "read_only"]});
    let first = app.post("/sa/user-tenant-roles", &sa, assign.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(
        first.body,
        json!({"username": "alice", "tenant_name": "credit_card", "roles": ["create", "read_only"]})
    );
    let retry = app.post("/sa/user-tenant-roles", &sa, assign).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.body, first.body);

    let invalid = [
        (
            json!({"username": "ghost", "tenant_name": "credit_card", "role": "create"}),
            "/username",
        ),
        (
            json!({"username": "alice", "tenant_name": "mortgage", "role": "create"}),
            "/tenant_name",
        ),
        (
            json!({"username": "alice", "tenant_name": "credit_card", "role": "superuser"}),
            "/role",
        ),
        (
            json!({"username": "alice", "tenant_name": "credit_card"}),
            "/role",
        ),
        (
            json!({"username": "alice", "tenant_name": "credit_card", "role": "create", "roles": ["admin"]}),
            "/role",
        ),
    ];
    for (body, pointer) in invalid {
        let response = app.post("/sa/user-tenant-roles", &sa, body.clone()).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(response.body["errors"][0]["pointer"], pointer, "{body}");
    }

    let pairs = |body: &Value| -> Vec<String> {
        body.as_array()
            .expect("list")
            .iter()
            .map(|a| {
                format!(
                    "{}:{}:{}",
                    a["tenant_name"].as_str().unwrap_or(""),
                    a["username"].as_str().unwrap_or(""),
                    a["role"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    let all = app.get("/sa/user-tenant-roles", &sa).await;
    assert_eq!(
        pairs(&all.body),
        [
            "credit_card:alice:create",
            "credit_card:alice:read_only",
            "loan:bob:approver"
        ]
    );
    assert_eq!(all.body[0]["assigned_by"], SUPER_ADMIN);
    let filtered = app
        .get(
            "/sa/user-tenant-roles?tenant_name=credit_card&role=read_only",
            &sa,
        )
        .await;
    assert_eq!(pairs(&filtered.body), ["credit_card:alice:read_only"]);
    let by_user = app.get("/sa/user-tenant-roles?username=bob", &sa).await;
    assert_eq!(pairs(&by_user.body), ["loan:bob:approver"]);
    let bad_filter = app
        .get("/sa/user-tenant-roles?tenant_name=NOT+VALID", &sa)
        .await;
    assert_eq!(bad_filter.status, StatusCode::BAD_REQUEST);

    let remove = json!({"username": "alice", "tenant_name": "credit_card", "role": "create"});
    let removed = app
        .call(
            Method::DELETE,
            "/sa/user-tenant-roles",
            Some(&sa),
            Some(remove.clone()),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let again = app
        .call(
            Method::DELETE,
            "/sa/user-tenant-roles",
            Some(&sa),
            Some(remove),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let left = app.get("/sa/user-tenant-roles?username=alice", &sa).await;
    assert_eq!(pairs(&left.body), ["credit_card:alice:read_only"]);
}
