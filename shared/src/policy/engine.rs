//! Cedar underneath [`super::decide`]: the per-container cache of parsed sets, the request and
//! entities of one question, the fail-closed evaluation, and validation against the schema.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Effect, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode,
    Validator,
};

use super::{Decision, Facts, PolicyError, Question, Subject, NAMESPACE, SCHEMA};
use crate::ids::TenantId;
use crate::tenant::{MethodType, Tenant};

/// Most tenants whose parsed set a container keeps; past that the cache starts afresh.
const MAX_CACHED_TENANTS: usize = 256;

/// What a cached set was parsed from: the tenant's stored text, or the settings its default
/// set is rendered from (so a decision on the default set renders nothing when warm).
#[derive(PartialEq)]
enum Source {
    Stored(String),
    Default {
        min_authenticators: u32,
        required_methods: Vec<MethodType>,
        reauthentication_window_secs: u32,
    },
}

impl Source {
    fn matches(&self, tenant: &Tenant) -> bool {
        match (self, &tenant.policies) {
            (Source::Stored(text), Some(stored)) => text == stored,
            (
                Source::Default {
                    min_authenticators,
                    required_methods,
                    reauthentication_window_secs,
                },
                None,
            ) => {
                *min_authenticators == tenant.min_authenticators
                    && *required_methods == tenant.required_methods
                    && *reauthentication_window_secs == tenant.reauthentication_window_secs
            }
            _ => false,
        }
    }

    fn of(tenant: &Tenant) -> Self {
        match &tenant.policies {
            Some(text) => Source::Stored(text.clone()),
            None => Source::Default {
                min_authenticators: tenant.min_authenticators,
                required_methods: tenant.required_methods.clone(),
                reauthentication_window_secs: tenant.reauthentication_window_secs,
            },
        }
    }
}

struct Cached {
    source: Source,
    set: Arc<Compiled>,
}

/// A parsed set and what every decision would otherwise work out again: each policy's notice
/// (Cedar parses the annotation key on every `annotation` call) and whether any policy reads
/// `source_ip` (Cedar parses the `ip` extension's name for every value it builds).
pub(super) struct Compiled {
    set: PolicySet,
    notices: HashMap<PolicyId, String>,
    reads_source_ip: bool,
}

impl Compiled {
    fn new(text: &str) -> Result<Self, PolicyError> {
        let set = PolicySet::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        let notices = set
            .policies()
            .filter_map(|p| {
                let notice = p.annotation("notice")?.trim();
                (!notice.is_empty()).then(|| (p.id().clone(), notice.to_owned()))
            })
            .collect();
        // A policy can only read the attribute by naming it, so a set without the name never
        // sees it: leaving it out of the context changes no decision.
        let reads_source_ip = text.contains("source_ip");
        Ok(Self {
            set,
            notices,
            reads_source_ip,
        })
    }
}

fn cache() -> &'static Mutex<HashMap<TenantId, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<TenantId, Cached>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The parsed set of `tenant`: from the cache when it was parsed from the same stored text or
/// the same settings, else parsed now (a changed set replaces the old one).
pub(super) fn cached_set(tenant: &Tenant) -> Result<Arc<Compiled>, PolicyError> {
    {
        let cache = cache().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache
            .get(&tenant.tenant_id)
            .filter(|c| c.source.matches(tenant))
        {
            return Ok(Arc::clone(&hit.set));
        }
    }
    let set = Arc::new(Compiled::new(&tenant.policy_text())?);
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= MAX_CACHED_TENANTS && !cache.contains_key(&tenant.tenant_id) {
        cache.clear();
    }
    cache.insert(
        tenant.tenant_id,
        Cached {
            source: Source::of(tenant),
            set: Arc::clone(&set),
        },
    );
    Ok(set)
}

/// The shipped schema, parsed on first use (validation only; decisions do not need it).
pub(super) fn schema() -> Result<&'static Schema, String> {
    static PARSED: OnceLock<Result<Schema, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| {
            Schema::from_cedarschema_str(SCHEMA)
                .map(|(schema, _warnings)| schema)
                .map_err(|e| format!("the shipped schema: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Checks a policy set against the shipped schema (strict mode): `Err` holds the parser's or
/// the validator's messages, one per problem.
pub fn validate_policies(text: &str) -> Result<(), Vec<String>> {
    if text.len() > super::MAX_POLICY_BYTES {
        return Err(vec![format!(
            "the policy set is {} bytes; at most {} are allowed",
            text.len(),
            super::MAX_POLICY_BYTES
        )]);
    }
    let set = PolicySet::from_str(text)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let schema = schema().map_err(|e| vec![e])?;
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    if result.validation_passed() {
        return Ok(());
    }
    Err(result
        .validation_errors()
        .map(|e| {
            let policy = set
                .policy(e.policy_id())
                .and_then(|p| p.annotation("id"))
                .unwrap_or_else(|| e.policy_id().as_ref());
            format!("policy {policy}: {e}")
        })
        .collect())
}

/// A decision against a set given as text, without the cache and without storing anything
/// (`authctl tenant policy test`).
pub fn decide_with_text(
    text: &str,
    subject: &Subject,
    question: &Question<'_>,
    facts: &Facts,
) -> Result<Decision, PolicyError> {
    evaluate(&Compiled::new(text)?, subject, question, facts)
}

/// The entity type names, built on the first decision.
struct Names {
    tenant: EntityTypeName,
    user: EntityTypeName,
    authenticator: EntityTypeName,
    action: EntityTypeName,
}

fn names() -> Result<&'static Names, PolicyError> {
    static NAMES: OnceLock<Result<Names, String>> = OnceLock::new();
    let build = || -> Result<Names, String> {
        let name = |ty: &str| {
            EntityTypeName::from_str(&format!("{NAMESPACE}::{ty}")).map_err(|e| e.to_string())
        };
        Ok(Names {
            tenant: name("Tenant")?,
            user: name("User")?,
            authenticator: name("Authenticator")?,
            action: name("Action")?,
        })
    };
    NAMES
        .get_or_init(build)
        .as_ref()
        .map_err(|e| PolicyError::Request(e.clone()))
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn string(value: impl Into<String>) -> RestrictedExpression {
    RestrictedExpression::new_string(value.into())
}

fn user_entity(names: &Names, subject: &Subject) -> Result<Entity, PolicyError> {
    let count = |m: MethodType| {
        let n = subject.authenticators.iter().filter(|t| **t == m).count();
        RestrictedExpression::new_long(i64::try_from(n).unwrap_or(i64::MAX))
    };
    let types: HashSet<MethodType> = subject.authenticators.iter().copied().collect();
    let total = i64::try_from(subject.authenticators.len()).unwrap_or(i64::MAX);
    let mut attrs = HashMap::from([
        (
            "method_types".to_owned(),
            RestrictedExpression::new_set(types.into_iter().map(|m| string(m.as_str()))),
        ),
        (
            "authenticator_count".to_owned(),
            RestrictedExpression::new_long(total),
        ),
        (
            "passkey_count".to_owned(),
            count(MethodType::WebauthnPasskey),
        ),
        (
            "security_key_count".to_owned(),
            count(MethodType::WebauthnFido),
        ),
    ]);
    if let Some(has) = subject.has_backup_codes {
        attrs.insert(
            "has_backup_codes".to_owned(),
            RestrictedExpression::new_bool(has),
        );
    }
    if let Some(groups) = &subject.groups {
        attrs.insert(
            "groups".to_owned(),
            RestrictedExpression::new_set(groups.iter().map(|g| string(g.as_str()))),
        );
    }
    let parents = HashSet::from([uid(&names.tenant, &subject.tenant.to_string())]);
    Entity::new(uid(&names.user, &subject.user.to_string()), attrs, parents)
        .map_err(|e| PolicyError::Request(e.to_string()))
}

fn authenticator_entity(
    names: &Names,
    facts: &super::AuthenticatorFacts,
) -> Result<Entity, PolicyError> {
    let mut attrs = HashMap::new();
    let method = facts.method_type.map_or("", |m| m.as_str());
    attrs.insert("method_type".to_owned(), string(method));
    if let Some(aaguid) = facts.aaguid {
        attrs.insert("aaguid".to_owned(), string(aaguid.to_string()));
        if let Some(model) = authenticators::lookup(&aaguid) {
            attrs.insert("friendly_name".to_owned(), string(model.name));
        }
    }
    if let Some(format) = &facts.attestation_format {
        attrs.insert("attestation_format".to_owned(), string(format.as_str()));
    }
    if let Some(be) = facts.backup_eligible {
        attrs.insert(
            "backup_eligible".to_owned(),
            RestrictedExpression::new_bool(be),
        );
    }
    if let Some(uv) = facts.user_verified {
        attrs.insert(
            "user_verified".to_owned(),
            RestrictedExpression::new_bool(uv),
        );
    }
    Entity::new(uid(&names.authenticator, &facts.id), attrs, HashSet::new())
        .map_err(|e| PolicyError::Request(e.to_string()))
}

fn context(
    question: &Question<'_>,
    facts: &Facts,
    with_source_ip: bool,
) -> Result<Context, PolicyError> {
    let mut pairs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(8);
    let mut put = |key: &str, value| pairs.push((key.to_owned(), value));
    if let Some(uv) = facts.uv {
        put("uv", RestrictedExpression::new_bool(uv));
    }
    if let Some(trusted) = facts.device_trusted {
        put("device_trusted", RestrictedExpression::new_bool(trusted));
    }
    if let Some(age) = facts.auth_age_secs {
        put("auth_age_secs", RestrictedExpression::new_long(age));
    }
    if let Some(grant) = facts.enrollment_grant {
        put("enrollment_grant", RestrictedExpression::new_bool(grant));
    }
    if let Some(ip) = facts.source_ip.filter(|_| with_source_ip) {
        put("source_ip", RestrictedExpression::new_ip(ip.to_string()));
    }
    match question {
        Question::WaiveMethod(method) => put("method_type", string(method.as_str())),
        Question::Register(a) => {
            if let Some(method) = a.method_type {
                put("method_type", string(method.as_str()));
            }
            if let Some(aaguid) = a.aaguid {
                put("aaguid", string(aaguid.to_string()));
            }
            if let Some(format) = &a.attestation_format {
                put("attestation_format", string(format.as_str()));
            }
        }
        Question::FullAccess
        | Question::BypassMfa(_)
        | Question::AddAuthenticator(_)
        | Question::DeleteAuthenticator(_)
        | Question::RegenerateBackupCodes => {}
    }
    Context::from_pairs(pairs).map_err(|e| PolicyError::Request(e.to_string()))
}

/// Evaluates one question against a parsed set.
pub(super) fn evaluate(
    compiled: &Compiled,
    subject: &Subject,
    question: &Question<'_>,
    facts: &Facts,
) -> Result<Decision, PolicyError> {
    let names = names()?;
    let tenant = uid(&names.tenant, &subject.tenant.to_string());
    let mut entities = vec![
        Entity::new_no_attrs(tenant.clone(), HashSet::new()),
        user_entity(names, subject)?,
    ];
    let resource = match question.authenticator() {
        Some(facts) => {
            let entity = authenticator_entity(names, facts)?;
            let id = entity.uid();
            entities.push(entity);
            id
        }
        None => tenant,
    };
    let entities =
        Entities::from_entities(entities, None).map_err(|e| PolicyError::Request(e.to_string()))?;
    let request = Request::new(
        uid(&names.user, &subject.user.to_string()),
        uid(&names.action, question.action().as_str()),
        resource,
        context(question, facts, compiled.reads_source_ip)?,
        None,
    )
    .map_err(|e| PolicyError::Request(e.to_string()))?;
    let response = Authorizer::new().is_authorized(&request, &compiled.set, &entities);
    let mut decision = conclude(
        compiled,
        response.decision(),
        response.diagnostics().reason(),
        response.diagnostics().errors(),
    );
    if let Some(facts) = question.authenticator() {
        name_the_authenticator(&mut decision.notices, facts);
    }
    Ok(decision)
}

/// `{authenticator}` in a notice becomes the model's name from the AAGUID list, or "this
/// authenticator" for a model the list does not know.
fn name_the_authenticator(notices: &mut [String], facts: &super::AuthenticatorFacts) {
    const PLACEHOLDER: &str = "{authenticator}";
    if !notices.iter().any(|n| n.contains(PLACEHOLDER)) {
        return;
    }
    let name = facts
        .aaguid
        .and_then(|aaguid| authenticators::lookup(&aaguid))
        .map_or("this authenticator", |model| model.name);
    for notice in notices.iter_mut() {
        *notice = notice.replace(PLACEHOLDER, name);
    }
}

/// The decision and its notices. Fails closed: Cedar skips a policy whose evaluation errors
/// (e.g. it reads an attribute that is absent without `has`), so a forbid that errors would
/// let an Allow through; an Allow with an erroring forbid becomes a Deny with that forbid's
/// notice.
fn conclude<'a>(
    compiled: &Compiled,
    decision: cedar_policy::Decision,
    reason: impl Iterator<Item = &'a PolicyId>,
    errors: impl Iterator<Item = &'a AuthorizationError>,
) -> Decision {
    let erroring_forbids: Vec<&PolicyId> = errors
        .map(|e| match e {
            AuthorizationError::PolicyEvaluationError(e) => e.policy_id(),
        })
        .filter(|id| {
            compiled
                .set
                .policy(id)
                .is_some_and(|p| p.effect() == Effect::Forbid)
        })
        .collect();
    match decision {
        cedar_policy::Decision::Allow if erroring_forbids.is_empty() => Decision {
            allowed: true,
            notices: compiled.notices(reason),
        },
        cedar_policy::Decision::Allow => Decision {
            allowed: false,
            notices: compiled.notices(erroring_forbids.into_iter()),
        },
        cedar_policy::Decision::Deny => Decision {
            allowed: false,
            notices: compiled.notices(reason),
        },
    }
}

impl Compiled {
    /// The notices of `policies` (trimmed, non-empty), sorted and without duplicates.
    fn notices<'a>(&self, policies: impl Iterator<Item = &'a PolicyId>) -> Vec<String> {
        let mut out: Vec<String> = policies
            .filter_map(|id| self.notices.get(id).cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
