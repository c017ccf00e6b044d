//! A small reader of `template.yaml` for the tests that check it (`iam.rs`, `template.rs`):
//! resources, parameters and conditions, and the intrinsic functions the template uses
//! (`!Ref`, `!GetAtt`, `!Sub`, `!If`, `!Equals`, `!Not`, `!And`, `!Or`, `!Condition`), in their
//! short (`!Ref X`) and long (`{Ref: X}`) forms. Anything else it meets is an error, so a
//! check never passes because it did not understand the template.

use std::collections::BTreeMap;

use serde_yaml::Value;

pub const TEMPLATE: &str = include_str!("../../../template.yaml");

/// The template under one set of parameter values.
pub struct Template {
    pub doc: Value,
    params: BTreeMap<String, String>,
}

/// An intrinsic function call: its name without `Fn::` or `!`, and its argument.
pub fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        Value::Mapping(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next()?;
            let key = key.as_str()?;
            let name = match key {
                "Ref" | "Condition" => key,
                _ => key.strip_prefix("Fn::")?,
            };
            Some((name.to_owned(), arg))
        }
        _ => None,
    }
}

fn as_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

impl Template {
    /// The project's template with its parameters' defaults.
    pub fn load() -> Self {
        Self::parse(TEMPLATE)
    }

    pub fn parse(yaml: &str) -> Self {
        let doc: Value = serde_yaml::from_str(yaml).expect("template YAML");
        let params = doc["Parameters"]
            .as_mapping()
            .expect("Parameters")
            .iter()
            .map(|(name, p)| {
                let name = name.as_str().expect("parameter name").to_owned();
                let default = match &p["Default"] {
                    Value::Null => String::new(),
                    other => as_str(other),
                };
                (name, default)
            })
            .collect();
        Self { doc, params }
    }

    /// The same template with some parameters set (each must exist).
    pub fn with(mut self, values: &[(&str, &str)]) -> Self {
        for (name, value) in values {
            let slot = self
                .params
                .get_mut(*name)
                .unwrap_or_else(|| panic!("no parameter {name}"));
            *slot = (*value).to_owned();
        }
        self
    }

    pub fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    }

    /// Every resource whose `Condition` holds, in template order.
    pub fn resources(&self) -> Vec<(&str, &Value)> {
        self.doc["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .map(|(id, r)| (id.as_str().expect("logical id"), r))
            .filter(|(_, r)| {
                r["Condition"]
                    .as_str()
                    .is_none_or(|condition| self.condition(condition))
            })
            .collect()
    }

    /// Every resource of the template, whatever its condition.
    pub fn all_resources(&self) -> Vec<(&str, &Value)> {
        self.doc["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .map(|(id, r)| (id.as_str().expect("logical id"), r))
            .collect()
    }

    pub fn resource(&self, id: &str) -> &Value {
        &self.doc["Resources"][id]
    }

    pub fn exists(&self, id: &str) -> bool {
        self.resources().iter().any(|(r, _)| *r == id)
    }

    /// The functions (`AWS::Serverless::Function`) that exist under these parameters.
    pub fn functions(&self) -> Vec<(&str, &Value)> {
        self.resources()
            .into_iter()
            .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
            .collect()
    }

    /// The value of a named condition.
    pub fn condition(&self, name: &str) -> bool {
        let definition = &self.doc["Conditions"][name];
        assert!(!definition.is_null(), "no condition {name}");
        self.truth(definition)
    }

    fn truth(&self, value: &Value) -> bool {
        let (name, arg) = intrinsic(value).unwrap_or_else(|| panic!("not a condition: {value:?}"));
        let args = || arg.as_sequence().expect("condition arguments");
        match name.as_str() {
            "Equals" => {
                let [a, b] = args().as_slice() else {
                    panic!("Equals takes two values")
                };
                self.scalar(a) == self.scalar(b)
            }
            "Not" => !self.truth(&args()[0]),
            "And" => args().iter().all(|c| self.truth(c)),
            "Or" => args().iter().any(|c| self.truth(c)),
            "Condition" => self.condition(arg.as_str().expect("condition name")),
            other => panic!("unsupported condition function {other}"),
        }
    }

    /// A value that must resolve to a string: a literal or a parameter's `!Ref`.
    pub fn scalar(&self, value: &Value) -> String {
        match intrinsic(value) {
            None => as_str(value),
            Some((name, arg)) if name == "Ref" => {
                self.param(arg.as_str().expect("Ref name")).to_owned()
            }
            Some((name, _)) => panic!("unsupported in a scalar: {name}"),
        }
    }

    /// Evaluates `!If` (recursively): the chosen branch, or `None` for `AWS::NoValue`.
    pub fn choose<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        match intrinsic(value) {
            Some((name, arg)) if name == "If" => {
                let [condition, yes, no] = arg.as_sequence().expect("If arguments").as_slice()
                else {
                    panic!("If takes three arguments")
                };
                let chosen = if self.condition(condition.as_str().expect("If condition")) {
                    yes
                } else {
                    no
                };
                self.choose(chosen)
            }
            Some((name, arg)) if name == "Ref" && arg.as_str() == Some("AWS::NoValue") => None,
            _ => Some(value),
        }
    }

    /// A list property whose items may be `!If`s: the items that remain.
    pub fn items<'a>(&self, value: &'a Value) -> Vec<&'a Value> {
        match self.choose(value) {
            None => Vec::new(),
            Some(Value::Sequence(items)) => items.iter().filter_map(|v| self.choose(v)).collect(),
            Some(single) => vec![single],
        }
    }

    /// The resource an ARN-valued expression names, as `LogicalId` or `LogicalId/index/name`:
    /// `!GetAtt X.Arn`, `!Sub "${X.Arn}/index/name"`, or `!Ref X` of a resource whose `Ref` is
    /// its ARN (a secret). A literal ARN or `*` is returned as it is written.
    pub fn arn(&self, value: &Value) -> String {
        let value = self
            .choose(value)
            .unwrap_or_else(|| panic!("an ARN that is AWS::NoValue"));
        match intrinsic(value) {
            None => as_str(value),
            Some((name, arg)) => match name.as_str() {
                "GetAtt" => {
                    let (id, attribute) = match arg {
                        Value::String(s) => s.split_once('.').expect("GetAtt X.Attribute"),
                        Value::Sequence(parts) => (
                            parts[0].as_str().expect("GetAtt id"),
                            parts[1].as_str().expect("GetAtt attribute"),
                        ),
                        other => panic!("GetAtt of {other:?}"),
                    };
                    assert_eq!(attribute, "Arn", "GetAtt {id}.{attribute} is not an ARN");
                    self.existing(id)
                }
                "Sub" => {
                    let text = arg.as_str().expect("Sub of a plain string");
                    let rest = text.strip_prefix("${").expect("Sub starting with ${X.Arn}");
                    let (reference, suffix) = rest.split_once('}').expect("Sub ${...}");
                    let id = reference
                        .strip_suffix(".Arn")
                        .unwrap_or_else(|| panic!("Sub of {reference}, not an ARN"));
                    assert!(
                        suffix.is_empty() || suffix.starts_with("/index/"),
                        "Sub suffix {suffix}"
                    );
                    format!("{}{suffix}", self.existing(id))
                }
                "Ref" => {
                    let id = arg.as_str().expect("Ref name");
                    let kind = self.resource(id)["Type"].as_str().unwrap_or_default();
                    assert_eq!(
                        kind, "AWS::SecretsManager::Secret",
                        "!Ref {id} is not an ARN (only a secret's Ref is)"
                    );
                    self.existing(id)
                }
                other => panic!("unsupported ARN expression {other}"),
            },
        }
    }

    /// `id`, which must exist under these parameters.
    fn existing(&self, id: &str) -> String {
        assert!(
            self.exists(id),
            "{id} is referenced but does not exist under {:?}",
            self.params
        );
        id.to_owned()
    }

    /// Every HttpApi route of the functions that exist: (API, method, path, function).
    pub fn routes(&self) -> Vec<(String, String, String, String)> {
        let mut routes = Vec::new();
        for (id, function) in self.functions() {
            let events = function["Properties"]["Events"].as_mapping();
            for (_, event) in events.into_iter().flatten() {
                if event["Type"].as_str() != Some("HttpApi") {
                    continue;
                }
                let p = &event["Properties"];
                let api = match intrinsic(&p["ApiId"]) {
                    Some((name, arg)) if name == "Ref" => arg.as_str().expect("ApiId").to_owned(),
                    _ => panic!("{id}: ApiId is not a !Ref"),
                };
                routes.push((
                    api,
                    p["Method"].as_str().expect("Method").to_uppercase(),
                    p["Path"].as_str().expect("Path").to_owned(),
                    id.to_owned(),
                ));
            }
        }
        routes
    }
}

#[test]
fn the_reader_evaluates_conditions_and_arns() {
    let t = Template::load().with(&[("PublishedKeySlots", "A,B"), ("SigningKeySlot", "B")]);
    assert!(t.condition("HasKeyA") && t.condition("HasKeyB") && !t.condition("SignWithA"));
    let choice: Value =
        serde_yaml::from_str("!If [SignWithA, !GetAtt TokenKeyA.Arn, !GetAtt TokenKeyB.Arn]")
            .unwrap();
    assert_eq!(t.arn(&choice), "TokenKeyB");
    let index: Value =
        serde_yaml::from_str(r#"!Sub "${UsersTable.Arn}/index/email-index""#).unwrap();
    assert_eq!(t.arn(&index), "UsersTable/index/email-index");
    let long: Value = serde_yaml::from_str("{Fn::GetAtt: [TenantsTable, Arn]}").unwrap();
    assert_eq!(t.arn(&long), "TenantsTable");
    let t = t.with(&[("PublishedKeySlots", "B")]);
    assert!(!t.exists("TokenKeyA") && t.exists("TokenKeyB"));
}
