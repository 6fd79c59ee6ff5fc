//! Custom roles (`/sa/tenants/{t}/roles`, `/sa/permissions`), tenant admins managing their own
//! members (`/tenants/{t}/members`), and the access audit trail that records both.

use axum::http::{Method, StatusCode, header};
use integration_tests::{SUPER_ADMIN, TenantFixture, TestApp, TestResponse, USER_PASSWORD};
use serde_json::{Value, json};

const CC_ROLES: &str = "/sa/tenants/credit_card/roles";
const CC_MEMBERS: &str = "/tenants/credit_card/members";

async fn create_role(app: &TestApp, sa: &str, tenant: &str, name: &str, permissions: &[&str]) {
    let response = app
        .post(
            &format!("/sa/tenants/{tenant}/roles"),
            sa,
            json!({"name": name, "permissions": permissions}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
}

fn pointer(response: &TestResponse) -> &str {
    response.body["errors"][0]["pointer"]
        .as_str()
        .unwrap_or_default()
}

/// `(username, roles)` of each member in a members list.
fn roles_by_member(members: &Value) -> Vec<(String, Value)> {
    members
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["username"].as_str().expect("name").to_owned(),
                m["roles"].clone(),
            )
        })
        .collect()
}

/// A submitted offer of `fx`'s tenant, written by its maker.
async fn submitted_offer(app: &TestApp, fx: &TenantFixture) -> i64 {
    let offers = format!("/tenants/{}/offers", fx.tenant);
    let created = app
        .post(
            &offers,
            &fx.maker,
            json!({"data": {"title": "Lounge access"}}),
        )
        .await;
    let id = created.body["id"].as_i64().expect("offer id");
    let submitted = app
        .post(&format!("{offers}/{id}/submit"), &fx.maker, json!({}))
        .await;
    assert_eq!(submitted.status, StatusCode::OK, "{:?}", submitted.body);
    id
}

#[tokio::test]
async fn the_seed_flow_a_custom_group_grants_exactly_its_permissions() {
    // Create tenant → create group → assign user → the user can do exactly what the group's
    // permissions allow, all over HTTP.
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let sa = app.super_admin_token().await;
    let created = app
        .post(
            CC_ROLES,
            &sa,
            json!({
                "name": "campaign_operator",
                "description": "Runs campaigns; never reviews offers",
                "permissions": ["campaign.process", "campaign.read", "campaign.write", "campaign.read"],
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(
        created.headers[header::LOCATION],
        "/sa/tenants/credit_card/roles/campaign_operator"
    );
    assert_eq!(
        created.body,
        json!({
            "role": "campaign_operator",
            "description": "Runs campaigns; never reviews offers",
            "permissions": ["campaign.read", "campaign.write", "campaign.process"],
            "is_default": false,
        })
    );
    let read = app
        .get("/sa/tenants/credit_card/roles/campaign_operator", &sa)
        .await;
    assert_eq!(read.body, created.body);
    app.create_user(&sa, "cc.operator", &[("credit_card", "campaign_operator")])
        .await;
    let operator = app.login("cc.operator", USER_PASSWORD).await;
    let submitted = submitted_offer(&app, &fx).await;

    let campaigns = "/tenants/credit_card/campaigns";
    let campaign = integration_tests::NewCampaign::of(fx.offer_id)
        .name("Operator's")
        .criteria(json!({"segment": "gold"}))
        .post(&app, "credit_card", &operator)
        .await;
    assert_eq!(campaign.status, StatusCode::ACCEPTED, "{:?}", campaign.body);
    let id = campaign.body["id"].as_i64().expect("campaign id");
    let one = format!("{campaigns}/{id}");
    let offers = "/tenants/credit_card/offers";
    // (what, method, path, body, expected status for campaign_operator)
    let cells: Vec<(&str, Method, String, Option<Value>, StatusCode)> = vec![
        (
            "list campaigns",
            Method::GET,
            campaigns.into(),
            None,
            StatusCode::OK,
        ),
        (
            "read campaign",
            Method::GET,
            one.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "edit draft campaign",
            Method::PUT,
            one.clone(),
            Some(json!({"name": "Renamed"})),
            StatusCode::OK,
        ),
        (
            "process",
            Method::POST,
            format!("{one}/process-customers"),
            Some(json!({})),
            StatusCode::ACCEPTED,
        ),
        (
            "change status",
            Method::PUT,
            one.clone(),
            Some(json!({"status": "active"})),
            StatusCode::FORBIDDEN,
        ),
        (
            "delete campaign",
            Method::DELETE,
            one.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "list offers",
            Method::GET,
            offers.into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "create offer",
            Method::POST,
            offers.into(),
            Some(json!({"data": {"x": 1}})),
            StatusCode::FORBIDDEN,
        ),
        (
            "approve offer",
            Method::POST,
            format!("{offers}/{submitted}/approve"),
            Some(json!({})),
            StatusCode::FORBIDDEN,
        ),
        (
            "reject offer",
            Method::POST,
            format!("{offers}/{submitted}/reject"),
            Some(json!({"comments": "no"})),
            StatusCode::FORBIDDEN,
        ),
        (
            "offer audit",
            Method::GET,
            format!("{offers}/{submitted}/audit-logs"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "members",
            Method::GET,
            CC_MEMBERS.into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "other tenant",
            Method::GET,
            "/tenants/loan/campaigns".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "platform",
            Method::GET,
            "/sa/tenants".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
    ];
    let mut mismatches = Vec::new();
    for (what, method, path, body, want) in cells {
        let got = app.call_as(method, &path, &operator, body).await;
        if got.status != want {
            mismatches.push(format!(
                "{what}: expected {want}, got {} {:?}",
                got.status, got.body
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    let me = app.get("/users/me/tenants", &operator).await;
    assert_eq!(
        me.body,
        json!([{"tenant_name": "credit_card", "roles": ["campaign_operator"]}]),
        "{:?}",
        me.body
    );
}

#[tokio::test]
async fn a_role_change_takes_effect_on_the_next_request_of_every_holder() {
    let app = TestApp::spawn().await;
    let _fx = app.tenant_with_offer("credit_card").await;
    let sa = app.super_admin_token().await;
    create_role(&app, &sa, "credit_card", "analyst", &["offer.read"]).await;
    app.create_user(&sa, "cc.analyst1", &[("credit_card", "analyst")])
        .await;
    app.create_user(&sa, "cc.analyst2", &[("credit_card", "analyst")])
        .await;
    let tokens = [
        app.login("cc.analyst1", USER_PASSWORD).await,
        app.login("cc.analyst2", USER_PASSWORD).await,
    ];
    let offers = "/tenants/credit_card/offers";
    let campaigns = "/tenants/credit_card/campaigns";
    for token in &tokens {
        assert_eq!(app.get(offers, token).await.status, StatusCode::OK);
        assert_eq!(
            app.get(campaigns, token).await.status,
            StatusCode::FORBIDDEN
        );
    }
    // The same tokens, after the super admin swaps the role's permissions.
    let changed = app
        .call_as(
            Method::PUT,
            &format!("{CC_ROLES}/analyst"),
            &sa,
            Some(json!({"permissions": ["campaign.read"], "description": "Campaign analyst"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(
        changed.body,
        json!({"role": "analyst", "description": "Campaign analyst",
               "permissions": ["campaign.read"], "is_default": false})
    );
    for token in &tokens {
        assert_eq!(app.get(offers, token).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get(campaigns, token).await.status, StatusCode::OK);
    }
    // A default role can be changed too, with the same immediate effect.
    let viewer = app.login("credit-card.viewer", USER_PASSWORD).await;
    assert_eq!(app.get(offers, &viewer).await.status, StatusCode::OK);
    let narrowed = app
        .call_as(
            Method::PUT,
            &format!("{CC_ROLES}/read_only"),
            &sa,
            Some(json!({"permissions": ["campaign.read"]})),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{:?}", narrowed.body);
    assert_eq!(narrowed.body["description"], "Reads offers and campaigns");
    assert_eq!(narrowed.body["is_default"], true);
    assert_eq!(app.get(offers, &viewer).await.status, StatusCode::FORBIDDEN);
    // Deleting the role with its assignments: every holder loses it at once.
    let deleted = app
        .call_as(
            Method::DELETE,
            &format!("{CC_ROLES}/analyst?remove_assignments=true"),
            &sa,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    for token in &tokens {
        assert_eq!(
            app.get(campaigns, token).await.status,
            StatusCode::FORBIDDEN
        );
    }
    let trail = app
        .get(
            "/sa/tenants/credit_card/access-audit-logs?role=analyst",
            &sa,
        )
        .await;
    let summary: Vec<(String, Option<String>, Option<String>)> = trail
        .body
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action").to_owned(),
                e["target_username"].as_str().map(str::to_owned),
                e["reason"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        summary,
        vec![
            ("role_created".into(), None, None),
            ("role_assigned".into(), s("cc.analyst1"), None),
            ("role_assigned".into(), s("cc.analyst2"), None),
            ("role_updated".into(), None, None),
            ("role_removed".into(), s("cc.analyst1"), s("role deleted")),
            ("role_removed".into(), s("cc.analyst2"), s("role deleted")),
            ("role_deleted".into(), None, None),
        ]
    );
    let updated = &trail.body[3];
    assert_eq!(updated["old_permissions"], json!(["offer.read"]));
    assert_eq!(updated["new_permissions"], json!(["campaign.read"]));
    assert_eq!(updated["performed_by"], SUPER_ADMIN);
}

#[tokio::test]
async fn the_roles_api_refuses_bad_input_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let _fx = app.tenant_with_offer("credit_card").await;
    let sa = app.super_admin_token().await;
    create_role(
        &app,
        &sa,
        "credit_card",
        "auditor",
        &["offer.read", "offer.audit"],
    )
    .await;
    let before = app.get(CC_ROLES, &sa).await;
    assert_eq!(before.body.as_array().map(Vec::len), Some(5));
    let post = |body: Value| {
        let (app, sa) = (&app, &sa);
        async move { app.post(CC_ROLES, sa, body).await }
    };
    let duplicate = post(json!({"name": "auditor", "permissions": ["offer.read"]})).await;
    assert_eq!(
        duplicate.status,
        StatusCode::CONFLICT,
        "{:?}",
        duplicate.body
    );
    let default_name = post(json!({"name": "approver", "permissions": ["offer.read"]})).await;
    assert_eq!(default_name.status, StatusCode::CONFLICT);
    assert!(
        default_name.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("default role")),
        "{:?}",
        default_name.body
    );
    let empty = post(json!({"name": "empty_role", "permissions": []})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointer(&empty), "/permissions");
    let unknown =
        post(json!({"name": "bad_role", "permissions": ["offer.read", "offer.approve_all"]})).await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        unknown.body
    );
    assert_eq!(pointer(&unknown), "/permissions/1");
    assert!(
        unknown.body["errors"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("offer.approve_all")),
        "{:?}",
        unknown.body
    );
    let bad_name = post(json!({"name": "Bad-Name", "permissions": ["offer.read"]})).await;
    assert_eq!(bad_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointer(&bad_name), "/name");
    let smuggled =
        post(json!({"name": "sneaky", "permissions": ["offer.read"], "is_default": true})).await;
    assert_eq!(smuggled.status, StatusCode::UNPROCESSABLE_ENTITY);
    let no_tenant = app
        .post(
            "/sa/tenants/nowhere/roles",
            &sa,
            json!({"name": "x_role", "permissions": ["offer.read"]}),
        )
        .await;
    assert_eq!(
        no_tenant.status,
        StatusCode::NOT_FOUND,
        "{:?}",
        no_tenant.body
    );
    let not_sa = app
        .post(
            CC_ROLES,
            &app.login("credit-card.admin", USER_PASSWORD).await,
            json!({"name": "mine", "permissions": ["offer.read"]}),
        )
        .await;
    assert_eq!(not_sa.status, StatusCode::FORBIDDEN);

    let put = |role: &str, body: Value| {
        let (app, sa, path) = (&app, &sa, format!("{CC_ROLES}/{role}"));
        async move { app.call_as(Method::PUT, &path, sa, Some(body)).await }
    };
    assert_eq!(
        put("ghost", json!({"permissions": ["offer.read"]}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let empty_put = put("auditor", json!({"permissions": []})).await;
    assert_eq!(empty_put.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(pointer(&empty_put), "/permissions");
    assert_eq!(
        put("auditor", json!({})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get(&format!("{CC_ROLES}/ghost"), &sa).await.status,
        StatusCode::NOT_FOUND
    );

    // Deletion: never a default; not while assigned unless asked.
    let delete = |path: String| {
        let (app, sa) = (&app, &sa);
        async move { app.call_as(Method::DELETE, &path, sa, None).await }
    };
    let default = delete(format!("{CC_ROLES}/approver?remove_assignments=true")).await;
    assert_eq!(default.status, StatusCode::CONFLICT);
    app.create_user(&sa, "cc.auditor", &[("credit_card", "auditor")])
        .await;
    let assigned = delete(format!("{CC_ROLES}/auditor")).await;
    assert_eq!(assigned.status, StatusCode::CONFLICT);
    assert!(
        assigned.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cc.auditor")),
        "{:?}",
        assigned.body
    );
    let auditor = app.login("cc.auditor", USER_PASSWORD).await;
    assert_eq!(
        app.get("/users/me/tenants", &auditor).await.body,
        json!([{"tenant_name": "credit_card", "roles": ["auditor"]}]),
        "the refused deletion removed nothing"
    );
    assert_eq!(
        app.get(CC_ROLES, &sa).await.body,
        before.body,
        "nothing changed"
    );
    let bad_flag = delete(format!("{CC_ROLES}/auditor?remove_assignments=maybe")).await;
    assert_eq!(bad_flag.status, StatusCode::BAD_REQUEST);

    // Removing the assignment first makes the plain deletion pass; a second one is 404.
    let removed = app
        .call(
            Method::DELETE,
            "/sa/user-tenant-roles",
            Some(&sa),
            Some(
                json!({"username": "cc.auditor", "tenant_name": "credit_card", "role": "auditor"}),
            ),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        delete(format!("{CC_ROLES}/auditor")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(format!("{CC_ROLES}/auditor")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_permission_catalogue_lists_every_permission_with_its_meaning() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let sa = app.super_admin_token().await;
    let catalogue = app.get("/sa/permissions", &sa).await;
    assert_eq!(catalogue.status, StatusCode::OK);
    let names: Vec<&str> = catalogue
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|p| {
            assert!(
                p["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{p}"
            );
            p["name"].as_str().expect("name")
        })
        .collect();
    let expected: Vec<&str> = shared::auth::Permission::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    assert_eq!(names, expected);
    assert!(names.contains(&"tenant.members.manage"));
    assert_eq!(
        app.get("/sa/permissions", &fx.admin).await.status,
        StatusCode::FORBIDDEN
    );
    // The default admin role holds every permission of the catalogue, the new one included.
    let admin = app.get(&format!("{CC_ROLES}/admin"), &sa).await;
    assert_eq!(admin.body["permissions"], json!(expected));
}

/// `credit_card` and `loan` with their default users, plus in `credit_card` a
/// `member_manager` (members and campaign reads only), a `campaign_viewer` role, a user
/// without roles and a second super admin; in `loan` a `loan_only` role.
struct Members {
    app: TestApp,
    sa: String,
    fx: TenantFixture,
    loan: TenantFixture,
    manager: String,
}

impl Members {
    async fn new() -> Self {
        let app = TestApp::spawn().await;
        let fx = app.tenant_with_offer("credit_card").await;
        let loan = app.tenant_with_offer("loan").await;
        let sa = app.super_admin_token().await;
        create_role(
            &app,
            &sa,
            "credit_card",
            "member_manager",
            &["tenant.members.manage", "campaign.read"],
        )
        .await;
        create_role(
            &app,
            &sa,
            "credit_card",
            "campaign_viewer",
            &["campaign.read"],
        )
        .await;
        create_role(&app, &sa, "loan", "loan_only", &["offer.read"]).await;
        app.create_user(&sa, "cc.manager", &[("credit_card", "member_manager")])
            .await;
        app.create_user(&sa, "newbie", &[]).await;
        let boss = app
            .post(
                "/sa/users",
                &sa,
                json!({"username": "boss", "password": USER_PASSWORD, "is_super_admin": true}),
            )
            .await;
        assert_eq!(boss.status, StatusCode::CREATED);
        let manager = app.login("cc.manager", USER_PASSWORD).await;
        Self {
            app,
            sa,
            fx,
            loan,
            manager,
        }
    }

    async fn assign(&self, token: &str, tenant: &str, username: &str, role: &str) -> TestResponse {
        self.app
            .post(
                &format!("/tenants/{tenant}/members"),
                token,
                json!({"username": username, "role": role}),
            )
            .await
    }

    async fn remove(&self, token: &str, username: &str, role: &str) -> TestResponse {
        self.app
            .call_as(
                Method::DELETE,
                &format!("{CC_MEMBERS}/{username}/roles/{role}"),
                token,
                None,
            )
            .await
    }
}

#[tokio::test]
async fn tenant_admins_assign_and_remove_roles_of_existing_users_in_their_own_tenant() {
    let w = Members::new().await;
    let (app, fx) = (&w.app, &w.fx);
    let members = app.get(CC_MEMBERS, &fx.admin).await;
    assert_eq!(members.status, StatusCode::OK, "{:?}", members.body);
    let listed = roles_by_member(&members.body);
    assert_eq!(
        listed,
        vec![
            ("cc.manager".into(), json!(["member_manager"])),
            ("credit-card.admin".into(), json!(["admin"])),
            ("credit-card.checker".into(), json!(["approver"])),
            ("credit-card.maker".into(), json!(["create"])),
            ("credit-card.viewer".into(), json!(["read_only"])),
        ]
    );
    let offers = "/tenants/credit_card/offers";
    let newbie = app.login("newbie", USER_PASSWORD).await;
    assert_eq!(app.get(offers, &newbie).await.status, StatusCode::FORBIDDEN);

    let assigned = w
        .assign(&fx.admin, "credit_card", "newbie", "read_only")
        .await;
    assert_eq!(assigned.status, StatusCode::CREATED, "{:?}", assigned.body);
    assert_eq!(
        assigned.headers[header::LOCATION],
        "/tenants/credit_card/members/newbie"
    );
    assert_eq!(
        assigned.body,
        json!({"username": "newbie", "tenant_name": "credit_card", "roles": ["read_only"]})
    );
    let again = w
        .assign(&fx.admin, "credit_card", "newbie", "read_only")
        .await;
    assert_eq!(again.status, StatusCode::OK, "a retry changes nothing");
    assert_eq!(
        app.get(offers, &newbie).await.status,
        StatusCode::OK,
        "effective on the next request"
    );
    let one = app.get(&format!("{CC_MEMBERS}/newbie"), &fx.admin).await;
    assert_eq!(
        one.body,
        json!({"username": "newbie", "full_name": null, "is_super_admin": false, "roles": ["read_only"]})
    );
    assert_eq!(
        app.get(&format!("{CC_MEMBERS}/boss"), &fx.admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let by_role = app
        .get(&format!("{CC_MEMBERS}?role=read_only"), &fx.admin)
        .await;
    let names: Vec<&str> = by_role
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["username"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["credit-card.viewer", "newbie"]);

    let removed = w.remove(&fx.admin, "newbie", "read_only").await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{:?}", removed.body);
    assert_eq!(app.get(offers, &newbie).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        w.remove(&fx.admin, "newbie", "read_only").await.status,
        StatusCode::NOT_FOUND
    );

    // The trail says who did what to whom, readable by the tenant's admin and super admins.
    let trail = app
        .get(
            "/tenants/credit_card/access-audit-logs?username=newbie",
            &fx.admin,
        )
        .await;
    assert_eq!(trail.status, StatusCode::OK, "{:?}", trail.body);
    let entries = trail.body.as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{entries:?}");
    for (entry, action) in entries.iter().zip(["role_assigned", "role_removed"]) {
        assert_eq!(entry["action"], action);
        assert_eq!(entry["performed_by"], "credit-card.admin");
        assert_eq!(entry["target_username"], "newbie");
        assert_eq!(entry["role"], "read_only");
        assert_eq!(entry["tenant_name"], "credit_card");
        assert_eq!(
            entry["new_permissions"],
            json!(["offer.read", "campaign.read"])
        );
        assert!(entry["created_at"].is_string());
    }
    let platform = app
        .get(
            "/sa/tenants/credit_card/access-audit-logs?username=newbie",
            &w.sa,
        )
        .await;
    assert_eq!(platform.body, trail.body);
    assert_eq!(
        app.get("/sa/tenants/nowhere/access-audit-logs", &w.sa)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for token in [&fx.maker, &fx.viewer, &w.loan.admin] {
        for path in [CC_MEMBERS, "/tenants/credit_card/access-audit-logs"] {
            assert_eq!(
                app.get(path, token).await.status,
                StatusCode::FORBIDDEN,
                "{path}"
            );
        }
    }
    // The loan admin sees only its own tenant's trail.
    let loan_trail = app
        .get("/tenants/loan/access-audit-logs", &w.loan.admin)
        .await;
    assert!(
        loan_trail
            .body
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["tenant_name"] == "loan"),
        "{:?}",
        loan_trail.body
    );
}

#[tokio::test]
async fn tenant_admins_cannot_reach_beyond_their_tenant_or_their_own_permissions() {
    let w = Members::new().await;
    let (app, fx) = (&w.app, &w.fx);
    // Another tenant's role is unknown here (404, as if it did not exist); so is a user.
    let foreign_role = w
        .assign(&fx.admin, "credit_card", "newbie", "loan_only")
        .await;
    assert_eq!(
        foreign_role.status,
        StatusCode::NOT_FOUND,
        "{:?}",
        foreign_role.body
    );
    let ghost = w
        .assign(&fx.admin, "credit_card", "ghost", "read_only")
        .await;
    assert_eq!(ghost.status, StatusCode::NOT_FOUND);
    // Another tenant's members are out of reach.
    let other_tenant = w.assign(&fx.admin, "loan", "newbie", "read_only").await;
    assert_eq!(other_tenant.status, StatusCode::FORBIDDEN);
    // Super admins' roles are the super admins' to change; such a user is answered like an
    // unknown one (tests/api/review.rs compares the two).
    let to_sa = w
        .assign(&fx.admin, "credit_card", "boss", "read_only")
        .await;
    assert_eq!(to_sa.status, StatusCode::NOT_FOUND, "{:?}", to_sa.body);
    // No creating users or super admins through this route.
    let smuggled = app
        .post(
            CC_MEMBERS,
            &fx.admin,
            json!({"username": "newbie", "role": "read_only", "is_super_admin": true}),
        )
        .await;
    assert_eq!(smuggled.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A member manager holds only tenant.members.manage and campaign.read: it may hand out
    // and take back roles within that, never anything broader — to itself neither.
    let m = &w.manager;
    for (username, role) in [
        ("newbie", "admin"),
        ("newbie", "read_only"),
        ("cc.manager", "admin"),
        ("cc.manager", "create"),
    ] {
        let response = w.assign(m, "credit_card", username, role).await;
        assert_eq!(
            response.status,
            StatusCode::FORBIDDEN,
            "{username} {role}: {:?}",
            response.body
        );
    }
    let detail = w.assign(m, "credit_card", "cc.manager", "read_only").await;
    assert!(
        detail.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("offer.read")),
        "names what it lacks: {:?}",
        detail.body
    );
    for (username, role) in [
        ("credit-card.admin", "admin"),
        ("credit-card.viewer", "read_only"),
    ] {
        let response = w.remove(m, username, role).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{username} {role}");
    }
    let within = w
        .assign(m, "credit_card", "newbie", "campaign_viewer")
        .await;
    assert_eq!(within.status, StatusCode::CREATED, "{:?}", within.body);
    let newbie = app.login("newbie", USER_PASSWORD).await;
    assert_eq!(
        app.get("/tenants/credit_card/campaigns", &newbie)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        w.remove(m, "newbie", "campaign_viewer").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/tenants/credit_card/campaigns", &newbie)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Nothing refused left a trace in the roles held.
    let members = app.get(CC_MEMBERS, &fx.admin).await;
    let held = roles_by_member(&members.body);
    assert_eq!(
        held,
        vec![
            ("cc.manager".into(), json!(["member_manager"])),
            ("credit-card.admin".into(), json!(["admin"])),
            ("credit-card.checker".into(), json!(["approver"])),
            ("credit-card.maker".into(), json!(["create"])),
            ("credit-card.viewer".into(), json!(["read_only"])),
        ]
    );
    // Once the super admin withdraws the manager's permission, its very next call is refused.
    let narrowed = app
        .call_as(
            Method::PUT,
            &format!("{CC_ROLES}/member_manager"),
            &w.sa,
            Some(json!({"permissions": ["campaign.read"]})),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK);
    assert_eq!(
        w.assign(m, "credit_card", "newbie", "campaign_viewer")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn super_admin_assignments_and_user_deletion_are_in_the_access_audit_trail() {
    let w = Members::new().await;
    let app = &w.app;
    let assigned = app
        .post(
            "/sa/user-tenant-roles",
            &w.sa,
            json!({"username": "newbie", "tenant_name": "credit_card", "roles": ["read_only", "campaign_viewer"]}),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::CREATED);
    let deleted = app
        .call_as(Method::DELETE, "/sa/users/newbie", &w.sa, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    let trail = app
        .get(
            "/tenants/credit_card/access-audit-logs?username=newbie",
            &w.fx.admin,
        )
        .await;
    let summary: Vec<(&str, &str, &str, Option<&str>)> = trail
        .body
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["performed_by"].as_str().expect("who"),
                e["role"].as_str().expect("role"),
                e["reason"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("role_assigned", SUPER_ADMIN, "campaign_viewer", None),
            ("role_assigned", SUPER_ADMIN, "read_only", None),
            (
                "role_removed",
                SUPER_ADMIN,
                "campaign_viewer",
                Some("user deleted")
            ),
            (
                "role_removed",
                SUPER_ADMIN,
                "read_only",
                Some("user deleted")
            ),
        ]
    );
}

#[tokio::test]
async fn a_stored_permission_this_build_does_not_know_counts_as_lacking() {
    // A role row may carry a permission name this build does not know (written by a newer
    // version, or one since withdrawn). It must not vanish from the "you may not grant what
    // you lack" check: the member manager holds every permission the role names that it
    // knows, so only the unknown one can refuse the assignment.
    let w = Members::new().await;
    w.app
        .db()
        .await
        .execute(
            "update tenant_roles set permissions = array['campaign.read', 'campaign.teleport']
             where tenant_name = 'credit_card' and role = 'campaign_viewer'",
            &[],
        )
        .await
        .expect("update");
    let response = w
        .assign(&w.manager, "credit_card", "newbie", "campaign_viewer")
        .await;
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{:?}",
        response.body
    );
    assert!(
        response.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("campaign.teleport")),
        "names it: {:?}",
        response.body
    );
    let members = w
        .app
        .get(&format!("{CC_MEMBERS}/newbie"), &w.fx.admin)
        .await;
    assert_eq!(members.status, StatusCode::NOT_FOUND, "nothing assigned");
}
