//! `offers-api`: permissions, the maker–checker workflow, its audit trail, concurrency,
//! schemas and tenant isolation.

use axum::http::{Method, Request, StatusCode, header};
use integration_tests::{TestApp, TestResponse, USER_PASSWORD};
use serde_json::{Value, json};

/// Tenant `credit_card` with one user per default role, an `author` (create role) who owns
/// seeded offers, a user without roles, a user with a role only in `loan`, a user holding
/// only the custom role `campaign_operator` (campaign read, write and process; no offer
/// permission at all), and tokens.
struct World {
    app: TestApp,
    tokens: Vec<(&'static str, Option<String>)>,
}

const PRINCIPALS: [&str; 9] = [
    "admin",
    "create",
    "approver",
    "read_only",
    "no_role",
    "other_tenant",
    "super_admin",
    "anonymous",
    "campaign_operator",
];

impl World {
    async fn new() -> Self {
        let app = TestApp::spawn().await;
        let sa = app.super_admin_token().await;
        app.create_tenant(&sa, "credit_card").await;
        app.create_tenant(&sa, "loan").await;
        let role = app
            .post(
                "/sa/tenants/credit_card/roles",
                &sa,
                json!({"name": "campaign_operator",
                       "permissions": ["campaign.read", "campaign.write", "campaign.process"]}),
            )
            .await;
        assert_eq!(role.status, StatusCode::CREATED, "{:?}", role.body);
        for (user, roles) in [
            ("cc.admin", vec![("credit_card", "admin")]),
            ("cc.maker", vec![("credit_card", "create")]),
            ("cc.checker", vec![("credit_card", "approver")]),
            ("cc.reader", vec![("credit_card", "read_only")]),
            ("cc.author", vec![("credit_card", "create")]),
            ("no.role", vec![]),
            ("loan.admin", vec![("loan", "admin")]),
            ("cc.operator", vec![("credit_card", "campaign_operator")]),
        ] {
            app.create_user(&sa, user, &roles).await;
        }
        let mut tokens = Vec::new();
        for (name, user) in PRINCIPALS.iter().zip([
            "cc.admin",
            "cc.maker",
            "cc.checker",
            "cc.reader",
            "no.role",
            "loan.admin",
        ]) {
            tokens.push((*name, Some(app.login(user, USER_PASSWORD).await)));
        }
        tokens.push(("super_admin", Some(sa)));
        tokens.push(("anonymous", None));
        tokens.push((
            "campaign_operator",
            Some(app.login("cc.operator", USER_PASSWORD).await),
        ));
        Self { app, tokens }
    }

    fn token(&self, who: &str) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(n, _)| *n == who)
            .and_then(|(_, t)| t.as_deref())
    }

    /// An offer by `cc.author` in `status`, with its create audit row, inserted directly.
    async fn seed_offer(&self, tenant: &str, status: &str) -> i32 {
        let db = self.app.db().await;
        let row = db
            .query_one(
                "insert into offers (tenant_name, status, data, created_by, last_edited_by)
                 values ($1, $2, '{\"apr\": 19.9}', 'cc.author', 'cc.author') returning id",
                &[&tenant, &status],
            )
            .await
            .expect("seed offer");
        let id: i32 = row.get(0);
        db.execute(
            "insert into offer_audit_logs (tenant_name, offer_id, action, performed_by)
             values ($1, $2, 'create', 'cc.author')",
            &[&tenant, &id],
        )
        .await
        .expect("seed audit");
        id
    }

    /// `method path` as `who`; an approval or rejection is sent as a checker sends it, with
    /// the `ETag` of the offer `who` read as `If-Match` (tests of the precondition itself call
    /// the app directly).
    async fn call(
        &self,
        who: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let review = ["approve", "reject"].into_iter().find_map(|step| {
            path.strip_suffix(&format!("/{step}"))
                .map(|offer| (offer, step))
        });
        match (review, self.token(who)) {
            (Some((offer, step)), Some(token)) if method == Method::POST => {
                self.app.review(offer, step, token, body).await
            }
            _ => self.app.call(method, path, self.token(who), body).await,
        }
    }
}

const BASE: &str = "/tenants/credit_card/offers";

#[tokio::test]
async fn permission_matrix() {
    let world = World::new().await;
    // (route, method, offer status to seed or "" for none, path suffix, body,
    //  expected status per principal in PRINCIPALS order)
    type Row = (
        &'static str,
        Method,
        &'static str,
        &'static str,
        Option<Value>,
        [u16; 9],
    );
    let rows: Vec<Row> = vec![
        (
            "create",
            Method::POST,
            "",
            "",
            Some(json!({"data": {"apr": 1}})),
            [201, 201, 403, 403, 403, 403, 403, 401, 403],
        ),
        (
            "list",
            Method::GET,
            "",
            "",
            None,
            [200, 200, 200, 200, 403, 403, 403, 401, 403],
        ),
        (
            "read",
            Method::GET,
            "draft",
            "",
            None,
            [200, 200, 200, 200, 403, 403, 403, 401, 403],
        ),
        (
            "replace",
            Method::PUT,
            "draft",
            "",
            Some(json!({"data": {"apr": 2}})),
            [200, 200, 403, 403, 403, 403, 403, 401, 403],
        ),
        (
            "patch",
            Method::PATCH,
            "draft",
            "",
            Some(json!({"comments": "x"})),
            [200, 200, 403, 403, 403, 403, 403, 401, 403],
        ),
        (
            "delete",
            Method::DELETE,
            "draft",
            "",
            None,
            [204, 403, 403, 403, 403, 403, 403, 401, 403],
        ),
        (
            "submit",
            Method::POST,
            "draft",
            "/submit",
            None,
            [200, 200, 403, 403, 403, 403, 403, 401, 403],
        ),
        (
            "approve",
            Method::POST,
            "submitted",
            "/approve",
            None,
            [200, 403, 200, 403, 403, 403, 403, 401, 403],
        ),
        (
            "reject",
            Method::POST,
            "submitted",
            "/reject",
            Some(json!({"comments": "no"})),
            [200, 403, 200, 403, 403, 403, 403, 401, 403],
        ),
        (
            "comment",
            Method::POST,
            "draft",
            "/comment",
            Some(json!({"comment_text": "hi"})),
            [201, 201, 403, 403, 403, 403, 403, 401, 403],
        ),
        (
            "audit",
            Method::GET,
            "draft",
            "/audit-logs",
            None,
            [200, 403, 403, 403, 403, 403, 403, 401, 403],
        ),
    ];
    let mut mismatches = Vec::new();
    for (route, method, seed, suffix, body, expected) in rows {
        for (who, want) in PRINCIPALS.iter().zip(expected) {
            let path = if seed.is_empty() {
                BASE.to_owned()
            } else {
                format!(
                    "{BASE}/{}{suffix}",
                    world.seed_offer("credit_card", seed).await
                )
            };
            let got = world
                .call(who, method.clone(), &path, body.clone())
                .await
                .status
                .as_u16();
            if got != want {
                mismatches.push(format!("{route} as {who}: expected {want}, got {got}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

fn actions(trail: &Value) -> Vec<(String, String, Option<String>)> {
    trail
        .as_array()
        .expect("trail")
        .iter()
        .map(|e| {
            let transition = e["new_data"]["status"].as_str().map(str::to_owned);
            (
                e["action"].as_str().expect("action").to_owned(),
                e["performed_by"].as_str().expect("who").to_owned(),
                transition,
            )
        })
        .collect()
}

#[tokio::test]
async fn the_whole_workflow_is_audited_row_by_row() {
    let world = World::new().await;
    let created = world
        .call(
            "create",
            Method::POST,
            BASE,
            Some(json!({"data": {"apr": 21.5, "title": "Gold"}, "comments": "first cut"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["status"], "draft");
    assert_eq!(created.body["created_by"], "cc.maker");
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.headers[header::ETAG], "\"1\"");
    let id = created.body["id"].as_i64().expect("id");
    let one = format!("{BASE}/{id}");

    let submitted = world
        .call("create", Method::POST, &format!("{one}/submit"), None)
        .await;
    assert_eq!(submitted.body["status"], "submitted");
    let rejected = world
        .call(
            "approver",
            Method::POST,
            &format!("{one}/reject"),
            Some(json!({"comments": "APR too high"})),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::OK);
    assert_eq!(rejected.body["status"], "rejected");

    let edited = world
        .call(
            "create",
            Method::PUT,
            &one,
            Some(json!({"data": {"apr": 18.0, "title": "Gold"}})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK);
    assert_eq!(
        edited.body["status"], "draft",
        "editing a rejected offer returns it to draft"
    );
    world
        .call(
            "create",
            Method::POST,
            &format!("{one}/comment"),
            Some(json!({"comment_text": "lowered APR"})),
        )
        .await;
    world
        .call("create", Method::POST, &format!("{one}/submit"), None)
        .await;
    let approved = world
        .call("approver", Method::POST, &format!("{one}/approve"), None)
        .await;
    assert_eq!(approved.status, StatusCode::OK);
    assert_eq!(approved.body["status"], "approved");
    assert_eq!(approved.body["version"], 6);

    assert_eq!(approved.body["live_version"], 1);
    assert_eq!(approved.body["draft_pending"], false);

    // An offer with an approved version is never deleted (it is retired instead; editing it
    // opens a draft of its next version: tests/api/versions.rs).
    let delete = world.call("admin", Method::DELETE, &one, None).await;
    assert_eq!(delete.status, StatusCode::CONFLICT);

    let trail = world
        .call("admin", Method::GET, &format!("{one}/audit-logs"), None)
        .await;
    let s = |v: &str| v.to_owned();
    assert_eq!(
        actions(&trail.body),
        vec![
            (s("create"), s("cc.maker"), Some(s("draft"))),
            (s("status_change"), s("cc.maker"), Some(s("submitted"))),
            (s("status_change"), s("cc.checker"), Some(s("rejected"))),
            (s("update"), s("cc.maker"), Some(s("draft"))),
            (s("comment"), s("cc.maker"), None),
            (s("status_change"), s("cc.maker"), Some(s("submitted"))),
            (s("status_change"), s("cc.checker"), Some(s("approved"))),
        ]
    );
    assert_eq!(trail.body[2]["comment"], "APR too high");
    assert_eq!(trail.body[2]["old_data"]["status"], "submitted");
    assert_eq!(
        trail.body[3]["old_data"]["data"],
        json!({"apr": 21.5, "title": "Gold"})
    );
    assert_eq!(
        trail.body[3]["new_data"]["data"],
        json!({"apr": 18.0, "title": "Gold"})
    );
    assert_eq!(trail.body[4]["comment"], "lowered APR");
}

#[tokio::test]
async fn makers_cannot_check_their_own_offers() {
    let world = World::new().await;
    let created = world
        .call(
            "admin",
            Method::POST,
            BASE,
            Some(json!({"data": {"apr": 3}})),
        )
        .await;
    let one = format!("{BASE}/{}", created.body["id"]);
    world
        .call("admin", Method::POST, &format!("{one}/submit"), None)
        .await;
    for action in ["approve", "reject"] {
        let own = world
            .call("admin", Method::POST, &format!("{one}/{action}"), None)
            .await;
        assert_eq!(own.status, StatusCode::FORBIDDEN, "{action}");
        assert!(
            own.body["detail"]
                .as_str()
                .expect("detail")
                .contains("maker-checker")
        );
    }
    // The last editor is a maker too: an admin who edits a submitted offer can't approve it.
    let seeded = world.seed_offer("credit_card", "submitted").await;
    let other = format!("{BASE}/{seeded}");
    let edit = world
        .call(
            "admin",
            Method::PATCH,
            &other,
            Some(json!({"comments": "tidied"})),
        )
        .await;
    assert_eq!(edit.status, StatusCode::OK);
    assert_eq!(
        edit.body["status"], "draft",
        "a changed submitted offer must be submitted again"
    );
    let resubmitted = world
        .call("admin", Method::POST, &format!("{other}/submit"), None)
        .await;
    assert_eq!(resubmitted.status, StatusCode::OK, "{:?}", resubmitted.body);
    let approve = world
        .call("admin", Method::POST, &format!("{other}/approve"), None)
        .await;
    assert_eq!(approve.status, StatusCode::FORBIDDEN);
    assert_eq!(
        world
            .call("approver", Method::POST, &format!("{other}/approve"), None)
            .await
            .status,
        StatusCode::OK
    );

    // The tenant setting switches the rule off.
    let sa = world.token("super_admin").expect("token");
    let off = world
        .app
        .put(
            "/sa/tenants/credit_card",
            sa,
            json!({"require_maker_checker": false}),
        )
        .await;
    assert_eq!(off.body["require_maker_checker"], false);
    assert_eq!(
        world
            .call("admin", Method::POST, &format!("{one}/approve"), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn co_authors_cannot_approve_content_they_wrote() {
    let world = World::new().await;
    // The maker (A) creates the offer.
    let created = world
        .call(
            "create",
            Method::POST,
            BASE,
            Some(json!({"data": {"title": "Gold card", "fee": 499}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let one = format!("{BASE}/{}", created.body["id"]);
    // The admin (B) rewrites the content.
    let rewritten = world
        .call(
            "admin",
            Method::PATCH,
            &one,
            Some(json!({"data": {"title": "Gold card", "fee": 0}})),
        )
        .await;
    assert_eq!(rewritten.status, StatusCode::OK, "{:?}", rewritten.body);
    // A makes a trivial edit, so A is the last editor, and submits.
    let trivial = world
        .call(
            "create",
            Method::PATCH,
            &one,
            Some(json!({"data": {"title": "Gold card.", "fee": 0}})),
        )
        .await;
    assert_eq!(trivial.status, StatusCode::OK, "{:?}", trivial.body);
    let submitted = world
        .call("create", Method::POST, &format!("{one}/submit"), None)
        .await;
    assert_eq!(submitted.status, StatusCode::OK);
    // B wrote content of this version: B may neither approve nor reject it.
    for action in ["approve", "reject"] {
        let coauthor = world
            .call("admin", Method::POST, &format!("{one}/{action}"), None)
            .await;
        assert_eq!(coauthor.status, StatusCode::FORBIDDEN, "{action}");
        assert!(
            coauthor.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("maker-checker")),
            "{:?}",
            coauthor.body
        );
    }
    // Someone who wrote none of it may.
    let approved = world
        .call("approver", Method::POST, &format!("{one}/approve"), None)
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
}

#[tokio::test]
async fn stale_if_match_answers_412() {
    let world = World::new().await;
    let id = world.seed_offer("credit_card", "draft").await;
    let one = format!("{BASE}/{id}");
    let read = world.call("admin", Method::GET, &one, None).await;
    assert_eq!(read.headers[header::ETAG], "\"1\"");
    let put = |etag: &str, apr: i32| {
        Request::builder()
            .method(Method::PUT)
            .uri(&one)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", world.token("admin").unwrap_or_default()),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::IF_MATCH, etag)
            .body(axum::body::Body::from(
                json!({"data": {"apr": apr}}).to_string(),
            ))
            .expect("request")
    };
    let first = world.app.send(put("\"1\"", 5)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers[header::ETAG], "\"2\"");
    let second = world.app.send(put("\"1\"", 6)).await;
    assert_eq!(second.status, StatusCode::PRECONDITION_FAILED);
    let now = world.call("admin", Method::GET, &one, None).await;
    assert_eq!(now.body["data"], json!({"apr": 5}));
}

#[tokio::test]
async fn offer_data_must_satisfy_the_tenant_schema() {
    let world = World::new().await;
    let sa = world.token("super_admin").expect("token");
    let bad_schema = world
        .app
        .put(
            "/sa/tenants/credit_card",
            sa,
            json!({"offer_schema": {"type": "no-such-type"}}),
        )
        .await;
    assert_eq!(bad_schema.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_schema.body["errors"][0]["pointer"], "/offer_schema");
    let schema = json!({"type": "object", "required": ["title"],
        "properties": {"title": {"type": "string"}, "apr": {"type": "number", "maximum": 50}}});
    let set = world
        .app
        .put(
            "/sa/tenants/credit_card",
            sa,
            json!({"offer_schema": schema}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);

    let invalid = world
        .call(
            "create",
            Method::POST,
            BASE,
            Some(json!({"data": {"apr": 99}})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut pointers: Vec<&str> = invalid.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["pointer"].as_str().expect("pointer"))
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["/data", "/data/apr"]);
    let not_object = world
        .call("create", Method::POST, BASE, Some(json!({"data": [1, 2]})))
        .await;
    assert_eq!(not_object.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        world.call("admin", Method::GET, BASE, None).await.body,
        json!([])
    );
    let valid = world
        .call(
            "create",
            Method::POST,
            BASE,
            Some(json!({"data": {"title": "Gold", "apr": 20}})),
        )
        .await;
    assert_eq!(valid.status, StatusCode::CREATED);
}

#[tokio::test]
async fn invalid_transitions_answer_409_naming_the_status() {
    let world = World::new().await;
    let draft = world.seed_offer("credit_card", "draft").await;
    let approve = world
        .call(
            "approver",
            Method::POST,
            &format!("{BASE}/{draft}/approve"),
            None,
        )
        .await;
    assert_eq!(approve.status, StatusCode::CONFLICT);
    assert!(
        approve.body["detail"]
            .as_str()
            .expect("detail")
            .contains("is draft")
    );
    let approved = world.seed_offer("credit_card", "approved").await;
    let submit = world
        .call(
            "admin",
            Method::POST,
            &format!("{BASE}/{approved}/submit"),
            None,
        )
        .await;
    assert_eq!(submit.status, StatusCode::CONFLICT);
    assert!(
        submit.body["detail"]
            .as_str()
            .expect("detail")
            .contains("is approved")
    );
    let submitted = world.seed_offer("credit_card", "submitted").await;
    let maker_edit = world
        .call(
            "create",
            Method::PUT,
            &format!("{BASE}/{submitted}"),
            Some(json!({"data": {}})),
        )
        .await;
    assert_eq!(maker_edit.status, StatusCode::CONFLICT);
    assert!(
        maker_edit.body["detail"]
            .as_str()
            .expect("detail")
            .contains("submitted")
    );
}

#[tokio::test]
async fn request_bodies_cannot_set_protected_fields() {
    let world = World::new().await;
    for field in ["status", "tenant_name", "created_by", "id", "version"] {
        let mut body = json!({"data": {"apr": 1}});
        body[field] = json!("approved");
        let response = world.call("create", Method::POST, BASE, Some(body)).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(
            response.body["detail"]
                .as_str()
                .expect("detail")
                .contains(field),
            "{field}"
        );
    }
    let id = world.seed_offer("credit_card", "draft").await;
    let sneaky = world
        .call(
            "admin",
            Method::PUT,
            &format!("{BASE}/{id}"),
            Some(json!({"data": {}, "status": "approved"})),
        )
        .await;
    assert_eq!(sneaky.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        world
            .call("admin", Method::GET, BASE, None)
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let one = world
        .call("admin", Method::GET, &format!("{BASE}/{id}"), None)
        .await;
    assert_eq!(one.body["status"], "draft");
}

#[tokio::test]
async fn tenants_are_isolated() {
    let world = World::new().await;
    let loan_offer = world.seed_offer("loan", "draft").await;
    let cross = world
        .call("admin", Method::GET, &format!("{BASE}/{loan_offer}"), None)
        .await;
    assert_eq!(cross.status, StatusCode::NOT_FOUND);
    let cross_edit = world
        .call(
            "admin",
            Method::DELETE,
            &format!("{BASE}/{loan_offer}"),
            None,
        )
        .await;
    assert_eq!(cross_edit.status, StatusCode::NOT_FOUND);
    let other_tenant = world
        .call("admin", Method::GET, "/tenants/loan/offers", None)
        .await;
    assert_eq!(other_tenant.status, StatusCode::FORBIDDEN);
    let unknown_tenant = world
        .call("admin", Method::GET, "/tenants/mortgage/offers", None)
        .await;
    assert_eq!(unknown_tenant.status, StatusCode::FORBIDDEN);
    let bad_id = world
        .call("admin", Method::GET, &format!("{BASE}/not-a-number"), None)
        .await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn lists_filter_and_offers_in_active_campaigns_are_kept() {
    let world = World::new().await;
    let mine = world
        .call(
            "create",
            Method::POST,
            BASE,
            Some(json!({"data": {"n": 1}})),
        )
        .await;
    world.seed_offer("credit_card", "submitted").await;
    let by_status = world
        .call(
            "admin",
            Method::GET,
            &format!("{BASE}?status=submitted"),
            None,
        )
        .await;
    assert_eq!(by_status.body.as_array().map(Vec::len), Some(1));
    let by_author = world
        .call(
            "admin",
            Method::GET,
            &format!("{BASE}?created_by=cc.maker"),
            None,
        )
        .await;
    assert_eq!(by_author.body[0]["id"], mine.body["id"]);
    let bad = world
        .call("admin", Method::GET, &format!("{BASE}?status=live"), None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let id = world.seed_offer("credit_card", "draft").await;
    world
        .app
        .db()
        .await
        .execute(
            "insert into campaigns (tenant_name, offer_id, name, start_date, end_date, status)
         values ('credit_card', $1, 'Live', current_date, current_date, 'active')",
            &[&id],
        )
        .await
        .expect("campaign");
    let delete = world
        .call("admin", Method::DELETE, &format!("{BASE}/{id}"), None)
        .await;
    assert_eq!(delete.status, StatusCode::CONFLICT);
    // A deleted offer's trail survives.
    let gone = mine.body["id"].as_i64().expect("id");
    assert_eq!(
        world
            .call("admin", Method::DELETE, &format!("{BASE}/{gone}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let trail = world
        .call(
            "admin",
            Method::GET,
            &format!("{BASE}/{gone}/audit-logs"),
            None,
        )
        .await;
    let kinds: Vec<&str> = trail
        .body
        .as_array()
        .expect("trail")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["create", "delete"]);
}
