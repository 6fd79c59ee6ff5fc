-- V015: the consent and contact-cap verdicts, each defined once.
--
-- Three statements judge consent (the expansion of a selection, the release, the audience
-- preview) and two judge the contact cap (the release, the preview). Each wrote the rule out
-- itself; tests kept them in agreement. Now each calls the function below, and the consent
-- and cap tests guard the one definition. Both are plain SQL expressions, immutable, so
-- PostgreSQL inlines them into the calling statement: no function call per row.

-- Whether a customer's consent for a channel lets a campaign contact them: `opted_in`, or no
-- record at all (`consent_status` null) where the tenant counts unknown consent as consent.
create function consent_allows(consent_status text, unknown_allowed boolean) returns boolean
language sql immutable parallel safe
as $$
    select coalesce(consent_status = 'opted_in'
                    or (consent_status is null and unknown_allowed), false)
$$;

-- Whether a customer is at the platform's contact cap: `contacts` in the policy's window
-- across every channel reach `max_contacts`, or `channel_contacts` on the campaign's channel
-- reach that channel's limit. Null counts (no contact) or a null limit (no policy, no limit
-- for the channel) never reach it.
create function contact_cap_reached(contacts bigint, channel_contacts bigint,
                                    max_contacts integer, channel_max integer)
returns boolean
language sql immutable parallel safe
as $$
    select coalesce(contacts >= max_contacts or channel_contacts >= channel_max, false)
$$;
