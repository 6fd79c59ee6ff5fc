//! The demo's people: the tenant, its users and the custom role (stage 1), and the
//! customers' consent and the contact cap (stage 3's preparation).

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::api::ensure_user;
use super::*;

impl Demo {
    /// The tenant, its users (one per default role) and the custom role the tenant admin gives the operator.
    pub(super) async fn tenant_and_users(&mut self) -> anyhow::Result<()> {
        // 1. The tenant and its users, then the custom role.
        self.tenant().await?;
        self.default_users().await?;
        self.custom_role().await
    }

    /// The tenant, created (with its offer schema and four eyes) or reused.
    async fn tenant(&mut self) -> anyhow::Result<()> {
        let tenant_path = format!("/sa/tenants/{TENANT}");
        let existing = self
            .api
            .send(Method::GET, &tenant_path, Some(self.as_admin()), None)
            .await?;
        if existing.status == StatusCode::NOT_FOUND {
            let body = json!({
                "name": TENANT,
                "description": "Credit cards",
                "require_maker_checker": true,
                "offer_schema": {
                    "type": "object",
                    "required": ["title", "annual_fee"],
                    "properties": {
                        "title": {"type": "string", "minLength": 1},
                        "annual_fee": {"type": "number", "minimum": 0},
                        "benefits": {"type": "array", "items": {"type": "string"}}
                    }
                }
            });
            self.api
                .send(
                    Method::POST,
                    "/sa/tenants",
                    Some(self.as_admin()),
                    Some(&body),
                )
                .await?
                .expect("creating the tenant", &[201])?;
            self.steps.push(format!(
                "created tenant {TENANT} (offers need a checker's approval)"
            ));
        } else {
            existing.expect("reading the tenant", &[200])?;
            self.steps.push(format!("reused tenant {TENANT}"));
        }
        Ok(())
    }

    /// One user per default role, made or reset, signed in.
    async fn default_users(&mut self) -> anyhow::Result<()> {
        for (username, role) in USERS {
            let password = ensure_user(
                &self.api,
                &self.admin_token,
                username,
                &format!("Demo {role}"),
            )
            .await?;
            let body = json!({"username": username, "tenant_name": TENANT, "role": role});
            self.api
                .send(
                    Method::POST,
                    "/sa/user-tenant-roles",
                    Some(self.as_admin()),
                    Some(&body),
                )
                .await?
                .expect(&format!("giving {username} the {role} role"), &[200, 201])?;
            self.tokens
                .insert(username, self.api.sign_in(username, &password).await?);
            self.users
                .push((username.to_owned(), role.to_owned(), password));
        }
        self.steps.push(format!(
            "users {}",
            USERS
                .iter()
                .map(|(u, r)| format!("{u} ({r})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(())
    }

    /// The custom role (created, or reset to its permissions on a later run), given to the
    /// operator by the tenant's own admin.
    async fn custom_role(&mut self) -> anyhow::Result<()> {
        let role_body = json!({
            "name": CUSTOM_ROLE,
            "description": "Runs campaigns; never reviews offers",
            "permissions": CUSTOM_ROLE_PERMISSIONS,
        });
        let created = self
            .api
            .send(
                Method::POST,
                &format!("/sa/tenants/{TENANT}/roles"),
                Some(self.as_admin()),
                Some(&role_body),
            )
            .await?;
        if created.status == StatusCode::CONFLICT {
            self.api
                .send(
                    Method::PUT,
                    &format!("/sa/tenants/{TENANT}/roles/{CUSTOM_ROLE}"),
                    Some(self.as_admin()),
                    Some(&json!({"permissions": CUSTOM_ROLE_PERMISSIONS})),
                )
                .await?
                .expect(&format!("resetting role {CUSTOM_ROLE}"), &[200])?;
        } else {
            created.expect(&format!("creating role {CUSTOM_ROLE}"), &[201])?;
        }
        let password = ensure_user(
            &self.api,
            &self.admin_token,
            OPERATOR,
            "Demo campaign operator",
        )
        .await?;
        let cc_admin = self.tokens.get("cc_admin").cloned().unwrap_or_default();
        self.api
            .send(
                Method::POST,
                &format!("/tenants/{TENANT}/members"),
                Some(Auth::Bearer(&cc_admin)),
                Some(&json!({"username": OPERATOR, "role": CUSTOM_ROLE})),
            )
            .await?
            .expect(
                &format!("cc_admin giving {OPERATOR} the {CUSTOM_ROLE} role"),
                &[200, 201],
            )?;
        self.tokens
            .insert(OPERATOR, self.api.sign_in(OPERATOR, &password).await?);
        self.users
            .push((OPERATOR.to_owned(), CUSTOM_ROLE.to_owned(), password));
        self.steps.push(format!(
        "custom role {CUSTOM_ROLE} ({}) defined by the super admin; cc_admin gave it to {OPERATOR}",
        CUSTOM_ROLE_PERMISSIONS.join(", ")
    ));
        Ok(())
    }

    /// Consent recorded for the gold and platinum holders (every tenth says no) and the platform's contact cap.
    pub(super) async fn consent_and_cap(&mut self) -> anyhow::Result<()> {
        // 3. Consent and the contact cap: the bank's data team records what the gold and
        //    platinum card holders said about e-mail (every tenth said no), and the platform
        //    caps contacts across every tenant.
        let mut consented = 0;
        let mut refused = 0;
        for segment in ["gold", "platinum"] {
            let mut after: Option<String> = None;
            loop {
                let mut path =
                    format!("/customers?segment={segment}&kyc_status=verified&limit=200");
                if let Some(after) = &after {
                    path.push_str(&format!("&after={after}"));
                }
                let page = self
                    .api
                    .send(Method::GET, &path, Some(self.as_admin()), None)
                    .await?
                    .expect("listing the audience's customers", &[200])?;
                let ids: Vec<String> = page
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["id"].as_str().map(str::to_owned))
                    .collect();
                for id in &ids {
                    let status = if (consented + refused) % 10 == 9 {
                        refused += 1;
                        "opted_out"
                    } else {
                        consented += 1;
                        "opted_in"
                    };
                    self.api
                        .send(
                            Method::PUT,
                            &format!("/customers/{id}/consents/email"),
                            Some(self.as_admin()),
                            Some(
                                &json!({"status": status, "source": "demo: branch consent forms"}),
                            ),
                        )
                        .await?
                        .expect("recording a consent", &[200])?;
                }
                let full = ids.len() == 200;
                after = ids.last().cloned();
                if !full {
                    break;
                }
            }
        }
        self.api
            .send(
                Method::PUT,
                "/sa/contact-policy",
                Some(self.as_admin()),
                Some(&json!({"max_contacts": CONTACT_CAP.0, "window_days": CONTACT_CAP.1})),
            )
            .await?
            .expect("setting the contact policy", &[200])?;
        self.steps.push(format!(
        "e-mail consent recorded for {} gold and platinum holders ({refused} opted out); contacts capped at {} per {} days across tenants",
        consented + refused,
        CONTACT_CAP.0,
        CONTACT_CAP.1
    ));
        Ok(())
    }
}
