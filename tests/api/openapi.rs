//! The OpenAPI document against the code and the served API: the committed `openapi.json` is
//! exactly what the code generates, it documents exactly the routes the routers serve, every
//! operation states its security and its problem responses, and the local server serves the
//! document and a Swagger UI whose assets are in the binary.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use integration_tests::TestApp;
use serde_json::Value;

const REGENERATE: &str =
    "cargo run -p offerctl -- openapi --output openapi.json --endpoint-table docs/api.md";

fn generated() -> Value {
    serde_json::to_value(offerctl_gateway::openapi()).expect("document as JSON")
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            out.push((method.to_uppercase(), path.clone(), operation));
        }
    }
    out
}

#[test]
fn the_committed_openapi_json_is_the_generated_one() {
    let file = format!("{}/../openapi.json", env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(&file).expect("openapi.json at the repository root");
    let generated = offerctl_gateway::openapi_json().expect("serialise");
    assert!(
        committed == generated,
        "openapi.json differs from the code's document; regenerate it with `{REGENERATE}`"
    );
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_its_operations_are_exactly_the_served_routes() {
    use tower::ServiceExt;
    let doc = generated();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    // Each function's router and document come from the same annotations; the merged
    // document holds exactly the functions' routes and the gateway's health check.
    let mut served: BTreeSet<(String, String)> = BTreeSet::new();
    for part in [
        auth_api::openapi(),
        admin_api::openapi(),
        offers_api::openapi(),
        campaigns_api::openapi(),
        customers_api::openapi(),
        delivery_webhook::openapi(),
    ] {
        for (method, path) in shared::http::routes_of(&part) {
            served.insert((method.to_string(), path));
        }
    }
    served.insert(("GET".into(), "/health".into()));
    assert_eq!(served, documented);
    // And the merged router answers every documented operation itself (no route is missing:
    // without credentials each answers 401, or its own answer, never the 404 or 405 of an
    // unknown route).
    let app = integration_tests::TestApp::spawn().await;
    for (method, path) in &documented {
        let concrete = path
            .split('/')
            .map(|segment| match segment {
                "{channel}" => "email",
                s if s.starts_with('{') => "1",
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/");
        let request = axum::http::Request::builder()
            .method(method.as_str())
            .uri(&concrete)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = offerctl_gateway::app(app.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        assert!(
            ![404, 405].contains(&response.status().as_u16()),
            "{method} {concrete}: {}",
            response.status()
        );
    }
}

#[test]
fn every_operation_states_its_security_tag_id_and_problem_responses() {
    let doc = generated();
    let mut ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let name = format!("{method} {path}");
        assert!(
            ids.insert(operation["operationId"].as_str().expect("operationId")),
            "{name}: duplicate operationId"
        );
        assert!(operation["tags"][0].is_string(), "{name}: no tag");
        let public = ["/auth/token", "/health"].contains(&path.as_str());
        let security = &operation["security"];
        if public {
            assert!(security.is_null(), "{name} must not require credentials");
        } else {
            let scheme = if path.starts_with("/system/") {
                "webhook_key"
            } else {
                "bearer"
            };
            assert_eq!(security[0][scheme], serde_json::json!([]), "{name}");
            assert!(operation["responses"]["401"].is_object(), "{name}: no 401");
        }
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{name}: no success response"
        );
        for status in ["400", "500", "503"] {
            assert!(responses.contains_key(status), "{name}: no {status}");
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let reference = response["$ref"].as_str().unwrap_or_default();
                assert!(
                    reference.starts_with("#/components/responses/"),
                    "{name} {status}: errors are the shared problem responses"
                );
            }
        }
    }
    let components = &doc["components"];
    for response in components["responses"]
        .as_object()
        .expect("responses")
        .values()
    {
        assert_eq!(
            response["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/ProblemDetails"
        );
    }
    assert_eq!(components["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(components["securitySchemes"]["webhook_key"]["in"], "header");
    assert_eq!(
        components["securitySchemes"]["webhook_key"]["name"],
        "X-API-Key"
    );
}

#[tokio::test]
async fn the_server_serves_the_document_and_an_offline_swagger_ui() {
    let app = TestApp::spawn().await;
    let document = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(document.body, generated());

    let page = app.call(Method::GET, "/docs/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().expect("HTML");
    assert!(html.contains("swagger-ui"), "{html}");
    // Its assets come from the binary, not from a CDN.
    assert!(
        !html.contains("https://"),
        "the page must not load remote assets"
    );
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let response = app.call(Method::GET, asset, None, None).await;
        assert_eq!(response.status, StatusCode::OK, "{asset}");
    }
    let initializer = app
        .call(Method::GET, "/docs/swagger-initializer.js", None, None)
        .await;
    assert!(
        initializer
            .body
            .as_str()
            .expect("script")
            .contains("/openapi.json"),
        "the page loads the served document"
    );
}
