//! Customers: super-admin CRUD, keyset pagination, and the all-or-nothing CSV import on the
//! real data set.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use integration_tests::{DEMO_CUSTOMERS_CSV, TestApp};
use serde_json::json;

#[tokio::test]
async fn the_real_file_imports_cleanly_and_a_second_import_changes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.super_admin_token().await;
    let data = std::fs::read(DEMO_CUSTOMERS_CSV).expect("demo data");
    let first = app.import_customers_csv(&token, data.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(
        first.body,
        json!({"rows": 10127, "inserted": 10127, "updated": 0, "unchanged": 0, "consents_changed": 0})
    );
    let stamp = "select max(updated_at)::text from customers";
    let before: String = app
        .db()
        .await
        .query_one(stamp, &[])
        .await
        .expect("q")
        .get(0);
    let second = app.import_customers_csv(&token, data).await;
    assert_eq!(
        second.body,
        json!({"rows": 10127, "inserted": 0, "updated": 0, "unchanged": 10127, "consents_changed": 0})
    );
    let after: String = app
        .db()
        .await
        .query_one(stamp, &[])
        .await
        .expect("q")
        .get(0);
    assert_eq!(before, after, "no row was rewritten");
    // Unknown columns of the source went into attributes, values kept their JSON types.
    let row = app
        .db()
        .await
        .query_one(
            "select attributes, annual_income::text, credit_score from customers
             where email = 'holder.768805383@example.com'",
            &[],
        )
        .await
        .expect("row");
    let attributes: serde_json::Value = row.get(0);
    assert_eq!(attributes["education_level"], "High School");
    assert_eq!(attributes["dependent_count"], 3);
    assert_eq!(row.get::<_, String>(1), "70000");
    assert_eq!(row.get::<_, i32>(2), 769);
}

#[tokio::test]
async fn a_file_with_bad_rows_is_refused_whole_naming_every_line() {
    let app = TestApp::spawn().await;
    let token = app.super_admin_token().await;
    let csv = "full_name,email,kyc_status,dob,credit_score,is_active,loyalty_tier\n\
               Ann Good,ann@example.com,verified,1980-01-02,700,true,gold\n\
               Bob Bad,bob@example.com,approved,1980-01-02,700,true,\n\
               Cid Bad,cid@example.com,pending,02/01/1980,700,true,\n\
               ,dan@example.com,pending,1980-01-02,700,true,\n\
               Eve Dup,ann@example.com,pending,1980-01-02,7000,maybe,\n";
    let response = app
        .import_customers_csv(&token, csv.as_bytes().to_vec())
        .await;
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        response.body
    );
    let pointers: Vec<&str> = response.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(
        pointers,
        [
            "/lines/3/kyc_status",
            "/lines/4/dob",
            "/lines/5/full_name",
            "/lines/6/is_active",
            "/lines/6/credit_score",
            "/lines/6/email",
        ]
    );
    let details = response.body["errors"].to_string();
    assert!(details.contains("is also on line 2"), "{details}");
    assert!(
        details.contains("not one of verified, pending, rejected"),
        "{details}"
    );
    assert_eq!(
        app.count("select count(*) from customers", &[]).await,
        0,
        "nothing imported"
    );

    // The good row alone imports, with its unknown column in attributes; a missing email
    // column refuses the header.
    let good = "full_name,email,loyalty_tier\nAnn Good,ann@example.com,gold\n";
    let response = app
        .import_customers_csv(&token, good.as_bytes().to_vec())
        .await;
    assert_eq!(response.body["inserted"], 1);
    let list = app.get("/customers?email=ann@example.com", &token).await;
    assert_eq!(list.body[0]["attributes"], json!({"loyalty_tier": "gold"}));
    let response = app
        .import_customers_csv(&token, b"full_name\nNo Email\n".to_vec())
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.body["errors"][0]["pointer"], "/lines/1");
    // Not CSV, not a super admin.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/customers/import")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("[]"))
        .expect("request");
    assert_eq!(
        app.send(request).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let sa = app.super_admin_token().await;
    app.create_tenant(&sa, "credit_card").await;
    app.create_user(&sa, "cc.admin", &[("credit_card", "admin")])
        .await;
    let tenant_admin = app
        .login("cc.admin", integration_tests::USER_PASSWORD)
        .await;
    assert_eq!(
        app.import_customers_csv(&tenant_admin, good.as_bytes().to_vec())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn crud_validation_and_keyset_pages() {
    let app = TestApp::spawn().await;
    let token = app.super_admin_token().await;
    let body = json!({
        "full_name": "Asha Rao", "email": "asha@example.com", "kyc_status": "verified",
        "segment": "gold", "annual_income": 1250000.50, "credit_score": 780, "state": "KA",
        "dob": "1990-04-01", "attributes": {"card_category": "gold"}
    });
    let created = app.post("/customers", &token, body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some(format!("/customers/{id}").as_str())
    );
    assert_eq!(created.body["annual_income"], json!(1250000.5));
    assert_eq!(created.body["is_active"], true);
    assert_eq!(
        app.post("/customers", &token, body.clone()).await.status,
        StatusCode::CONFLICT
    );
    let bad = app
        .post(
            "/customers",
            &token,
            json!({"full_name": "", "gender": "m", "credit_score": 1000, "email": "nope"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(
        pointers,
        ["/full_name", "/email", "/gender", "/credit_score"]
    );
    let typed = app
        .post(
            "/customers",
            &token,
            json!({"full_name": "X", "credit_score": "high"}),
        )
        .await;
    assert_eq!(typed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(typed.body["errors"][0]["pointer"], "/credit_score");

    let path = format!("/customers/{id}");
    let mut replaced = body.clone();
    replaced["segment"] = json!("platinum");
    let put = app.put(&path, &token, replaced).await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    assert_eq!(put.body["segment"], "platinum");
    assert_eq!(app.get(&path, &token).await.body["segment"], "platinum");
    assert_eq!(
        app.get("/customers/not-a-uuid", &token).await.status,
        StatusCode::BAD_REQUEST
    );

    app.import_demo_customers().await;
    let mut next = Some("/customers?segment=platinum&limit=7".to_owned());
    let mut ids = Vec::new();
    while let Some(page) = next.take() {
        let response = app.get(&page, &token).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        for customer in response.body.as_array().expect("array") {
            assert_eq!(customer["segment"], "platinum");
            ids.push(customer["id"].as_str().expect("id").to_owned());
        }
        next = response
            .headers
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.strip_prefix('<'))
            .and_then(|l| l.split_once('>'))
            .map(|(target, _)| target.to_owned());
        if let Some(target) = &next {
            assert!(target.contains("segment=platinum") && target.contains("limit=7"));
        }
    }
    let platinum = app
        .count(
            "select count(*) from customers where segment = 'platinum'",
            &[],
        )
        .await;
    assert_eq!(ids.len() as i64, platinum);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids);
    assert_eq!(
        app.get("/customers?limit=201", &token).await.status,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        app.delete(&path, &token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&path, &token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&path, &token).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_json_escape_postgresql_cannot_store_is_a_problem_of_its_line_not_a_500() {
    // Review 3, finding 4: `{"a":"\u0000"}` is valid JSON (an escape, not a raw NUL) that
    // jsonb refuses; it failed the whole import with a 500. It is a problem of its row now.
    let app = TestApp::spawn().await;
    let token = app.super_admin_token().await;
    let csv = "full_name,email,attributes\n\
               Ann Good,ann@example.com,\"{\"\"a\"\":1}\"\n\
               Bob Nul,bob@example.com,\"{\"\"a\"\":\"\"x\\u0000y\"\"}\"\n\
               Cid Key,cid@example.com,\"{\"\"k\\u0000\"\":[1]}\"\n";
    let response = app
        .import_customers_csv(&token, csv.as_bytes().to_vec())
        .await;
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        response.body
    );
    let pointers: Vec<&str> = response.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(pointers, ["/lines/3/attributes", "/lines/4/attributes"]);
    assert!(
        response.body["errors"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("U+0000")),
        "{:?}",
        response.body
    );
    assert_eq!(
        app.count("select count(*) from customers", &[]).await,
        0,
        "nothing imported"
    );
}
