//! Snapshot tests: the exact diagnostics of every fixture under `tests/data/audit`.
//!
//! Run `UPDATE_EXPECT=1 cargo nextest run -p objectos-spec` after an intended change, then review the diff.

use expect_test::{Expect, expect};

use crate::{audit, files_under, render};

fn check(files: &[&str], expect: Expect) {
    let report = audit(files);
    expect.assert_eq(&render(&report));
}

/// Every invalid fixture with a snapshot test below; a new fixture must be added here and get a test.
const COVERED: &[&str] = &[
    "invalid/alias_bomb.object.yml",
    "invalid/autonumber_bad_format.object.yml",
    "invalid/bad_field_type.object.yml",
    "invalid/bad_name.object.yml",
    "invalid/bad_permission_set.permission.yml",
    "invalid/bad_permission_shapes.permission.yml",
    "invalid/bad_profile.permission.yml",
    "invalid/bad_value_types.object.yml",
    "invalid/computed_without_keys.object.yml",
    "invalid/dangling_reference.object.yml",
    "invalid/deep_nesting.object.yml",
    "invalid/duplicate_keys.object.yml",
    "invalid/duplicate_object_a.object.yml",
    "invalid/duplicate_object_b.object.yml",
    "invalid/duplicate_rule_names.object.yml",
    "invalid/empty.object.yml",
    "invalid/json_problems.object.json",
    "invalid/json_syntax_error.object.json",
    "invalid/lookup_without_reference.object.yml",
    "invalid/malformed_yaml.object.yml",
    "invalid/manifest_bad_id/manifest.yml",
    "invalid/manifest_bad_semver/objectstack.yml",
    "invalid/manifest_json/manifest.json",
    "invalid/manifest_unknown_names/manifest.yml",
    "invalid/min_greater_than_max.object.yml",
    "invalid/missing_name.object.yml",
    "invalid/root_not_mapping.object.yml",
    "invalid/rule_missing_keys.object.yml",
    "invalid/select_bad_options.object.yml",
    "invalid/select_without_options.object.yml",
    "invalid/system_field_name.object.yml",
    "invalid/tab_indent.object.yml",
    "invalid/unknown_field_refs.object.yml",
    "invalid/unknown_keys.object.yml",
    "invalid/unknown_rule_type.object.yml",
];

#[test]
fn every_invalid_fixture_has_a_snapshot() {
    assert_eq!(files_under("invalid"), COVERED);
}

#[test]
fn every_invalid_fixture_is_reported() {
    // The duplicate-object pair is only wrong together; `duplicate_objects` covers it.
    for f in COVERED.iter().filter(|f| !f.contains("duplicate_object_")) {
        let report = audit(&[f]);
        assert!(!report.diagnostics.is_empty(), "{f}: no diagnostic");
        assert!(
            report.error_count() > 0,
            "{f}: no error:\n{}",
            render(&report)
        );
    }
}

#[test]
fn valid_fixtures_are_clean() {
    let files = files_under("valid");
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let report = audit(&refs);
    assert_eq!(render(&report), "");
    assert_eq!(report.files_checked, files.len());
    assert_eq!(report.objects, files.len() - 1);
    assert_eq!(report.object_schemas.len(), files.len() - 1);
    assert_eq!(report.manifests.len(), 1);
}

#[test]
fn malformed_yaml() {
    check(
        &["invalid/malformed_yaml.object.yml"],
        expect![[r#"
            invalid/malformed_yaml.object.yml:4: YAML syntax error at column 7: an inline mapping `{...}` misses a `,` between two entries or its closing `}`; nothing else in this file was checked
        "#]],
    );
}

#[test]
fn tab_indent() {
    check(
        &["invalid/tab_indent.object.yml"],
        expect![[r#"
            invalid/tab_indent.object.yml:4: YAML syntax error at column 2: a tab is used for indentation; YAML indents with spaces only; nothing else in this file was checked
        "#]],
    );
}

#[test]
fn bad_field_type() {
    check(
        &["invalid/bad_field_type.object.yml"],
        expect![[r#"
        invalid/bad_field_type.object.yml:4: fields.weight.type: unknown field type `nubmer`; did you mean `number`? expected one of `text`, `textarea`, `email`, `url`, `phone`, `password`, `markdown`, `html`, `richtext`, `number`, `currency`, `percent`, `date`, `datetime`, `time`, `boolean`, `toggle`, `select`, `multiselect`, `radio`, `checkboxes`, `lookup`, `master_detail`, `tree`, `image`, `file`, `avatar`, `video`, `audio`, `formula`, `summary`, `autonumber`, `location`, `address`, `code`, `json`, `color`, `rating`, `slider`, `signature`, `qrcode`, `progress`, `tags`, `vector`, `secret`, `user`, `composite`, `repeater`, `record` or `object`
        invalid/bad_field_type.object.yml:6: fields.carrier.type: unknown field type `string`; did you mean `text`? expected one of `text`, `textarea`, `email`, `url`, `phone`, `password`, `markdown`, `html`, `richtext`, `number`, `currency`, `percent`, `date`, `datetime`, `time`, `boolean`, `toggle`, `select`, `multiselect`, `radio`, `checkboxes`, `lookup`, `master_detail`, `tree`, `image`, `file`, `avatar`, `video`, `audio`, `formula`, `summary`, `autonumber`, `location`, `address`, `code`, `json`, `color`, `rating`, `slider`, `signature`, `qrcode`, `progress`, `tags`, `vector`, `secret`, `user`, `composite`, `repeater`, `record` or `object`
        invalid/bad_field_type.object.yml:8: fields.tracking.type: expected a string, found the number 42; put it in quotes
        invalid/bad_field_type.object.yml:9: fields.eta: missing required key `type`: the field type, such as `text`, `number`, `select` or `lookup`
    "#]],
    );
}

#[test]
fn missing_name() {
    check(
        &["invalid/missing_name.object.yml"],
        expect![[r#"
        invalid/missing_name.object.yml:1: missing required key `name`: the object's API name, such as `invoice`
    "#]],
    );
}

#[test]
fn bad_name() {
    check(
        &["invalid/bad_name.object.yml"],
        expect![[r#"
        invalid/bad_name.object.yml:1: name: object name `Support Ticket` is invalid: use lowercase letters, digits and `_`, starting with a letter or `_` (pattern ^[a-z_][a-z0-9_]*$), e.g. `support_ticket`
        invalid/bad_name.object.yml:3: fields.FirstName: field name `FirstName` is invalid: use lowercase letters, digits and `_`, starting with a letter or `_` (pattern ^[a-z_][a-z0-9_]*$), e.g. `first_name`
        invalid/bad_name.object.yml:4: fields.2nd_line: field name `2nd_line` is invalid: use lowercase letters, digits and `_`, starting with a letter or `_` (pattern ^[a-z_][a-z0-9_]*$), e.g. `_2nd_line`
    "#]],
    );
}

#[test]
fn lookup_without_reference() {
    check(
        &["invalid/lookup_without_reference.object.yml"],
        expect![[r#"
        invalid/lookup_without_reference.object.yml:3: fields.assignee: a `lookup` field needs `reference`: the name of the object it points to, such as `account`
        invalid/lookup_without_reference.object.yml:6: fields.project: a `master_detail` field needs `reference`: the name of the object it points to, such as `account`
    "#]],
    );
}

#[test]
fn dangling_reference() {
    check(
        &["invalid/dangling_reference.object.yml"],
        expect![[r#"
        invalid/dangling_reference.object.yml:5: fields.project.reference: no object named `projekt`: neither the audited files nor the base preset define it; known objects include `task`, `user`, `organization` or `role`
        invalid/dangling_reference.object.yml:8: fields.owner.reference: no object named `usr`: neither the audited files nor the base preset define it; did you mean `user`? known objects include `task`, `user`, `organization` or `role`
    "#]],
    );
}

#[test]
fn select_without_options() {
    check(
        &["invalid/select_without_options.object.yml"],
        expect![[r#"
        invalid/select_without_options.object.yml:3: fields.priority: a `select` field needs `options`: a list of choices such as `[{ label: Open, value: open }, { label: Closed, value: closed }]`
        invalid/select_without_options.object.yml:7: fields.tags.options: `options` is empty; a `multiselect` field needs `options`: a list of choices such as `[{ label: Open, value: open }, { label: Closed, value: closed }]`
    "#]],
    );
}

#[test]
fn select_bad_options() {
    check(
        &["invalid/select_bad_options.object.yml"],
        expect![[r#"
        invalid/select_bad_options.object.yml:5: fields.status.options: 2 options are marked `default: true` (lines 7, 8); a single-choice `select` field can have one default
        invalid/select_bad_options.object.yml:6: fields.status.options[0].value: option value `Open` must be lowercase; write `{ label: Open, value: open }` (the label keeps its capitals)
        invalid/select_bad_options.object.yml:8: fields.status.options[2].value: duplicate option value `closed` (first used at line 7); option values must be unique
        invalid/select_bad_options.object.yml:9: fields.status.options[3]: missing required key `value`: the stored value of this choice, lowercase, such as `open`
        invalid/select_bad_options.object.yml:10: fields.status.options[4]: expected an option: a string or a mapping such as `{ label: Open, value: open }`, found the number 3
        invalid/select_bad_options.object.yml:11: fields.status.defaultValue: default `pending` is not one of the option values `Open` or `closed`
    "#]],
    );
}

#[test]
fn duplicate_keys() {
    check(
        &["invalid/duplicate_keys.object.yml"],
        expect![[r#"
        invalid/duplicate_keys.object.yml:7: fields.subject: duplicate key `maxLength`: first defined at line 6, again at line 7; each key may appear once in a mapping
        invalid/duplicate_keys.object.yml:8: duplicate key `label`: first defined at line 2, again at line 8; each key may appear once in a mapping
    "#]],
    );
}

#[test]
fn min_greater_than_max() {
    check(
        &["invalid/min_greater_than_max.object.yml"],
        expect![[r#"
        invalid/min_greater_than_max.object.yml:5: fields.value.min: `min` (10) is greater than `max` (5); expected min <= max
        invalid/min_greater_than_max.object.yml:9: fields.code.minLength: `minLength` (12) is greater than `maxLength` (8); expected minLength <= maxLength
        invalid/min_greater_than_max.object.yml:14: fields.price.scale: `scale` (6) is greater than `precision` (4); the digits after the point are part of the total
        invalid/min_greater_than_max.object.yml:17: fields.step_size.step: `step` is 0; expected a number greater than 0
    "#]],
    );
}

#[test]
fn unknown_rule_type() {
    check(
        &["invalid/unknown_rule_type.object.yml"],
        expect![[r#"
        invalid/unknown_rule_type.object.yml:6: validations[0].type: unknown validation rule type `regex`; did you mean `format`? expected one of `script`, `unique`, `state_machine`, `format`, `cross_field`, `json_schema`, `async`, `custom` or `conditional`
        invalid/unknown_rule_type.object.yml:9: validations[1]: missing required key `type`: the rule type: `script`, `unique`, `state_machine`, `format`, `cross_field`, `json_schema`, `async`, `custom` or `conditional`
    "#]],
    );
}

#[test]
fn rule_missing_keys() {
    check(
        &["invalid/rule_missing_keys.object.yml"],
        expect![[r#"
        invalid/rule_missing_keys.object.yml:8: validations[0]: missing required key `name`: a unique rule name such as `amount_positive`
        invalid/rule_missing_keys.object.yml:8: validations[0]: missing required key `condition`: a formula that is TRUE when the record is invalid, such as `amount < 0`
        invalid/rule_missing_keys.object.yml:14: validations[1].transitions.open[1]: state `reopened` is not an option value of field `status`; expected one of `open` or `closed`
        invalid/rule_missing_keys.object.yml:18: validations[2].fields[0]: `subjct` is not a field of this object; did you mean `subject`?
        invalid/rule_missing_keys.object.yml:23: validations[3].regex: `regex` is not a valid regular expression: unclosed character class
        invalid/rule_missing_keys.object.yml:28: validations[4].events[1]: unknown event `save`; expected `insert`, `update` or `delete`
        invalid/rule_missing_keys.object.yml:29: validations[4].severity: `fatal` is not allowed here; expected one of `error`, `warning` or `info`
        invalid/rule_missing_keys.object.yml:35: validations[5].then: a `format` rule needs `regex` (a regular expression) or `format` (`email`, `url`, `phone` or `json`)
    "#]],
    );
}

#[test]
fn duplicate_rule_names() {
    check(
        &["invalid/duplicate_rule_names.object.yml"],
        expect![[r#"
        invalid/duplicate_rule_names.object.yml:9: validations[1].name: duplicate validation rule name `subject_required` (first used at line 5); rule names must be unique within an object
    "#]],
    );
}

#[test]
fn unknown_keys() {
    check(
        &["invalid/unknown_keys.object.yml"],
        expect![[r#"
            invalid/unknown_keys.object.yml:2: unknown key `lable`; did you mean `label`?
            invalid/unknown_keys.object.yml:7: fields.subject: unknown key `lable`; did you mean `label`?
            invalid/unknown_keys.object.yml:8: fields.subject: unknown key `requried`; did you mean `required`?
            invalid/unknown_keys.object.yml:12: fields.body: unknown key `colour`; custom keys start with `x-`
            invalid/unknown_keys.object.yml:13: fields.body: warning: `widget` is an ObjectStack key that ObjectOS does not act on; it is kept but has no effect here
            invalid/unknown_keys.object.yml:14: fields.body.options: warning: `options` has no effect on a `textarea` field; only select, multiselect, radio and checkboxes use it
        "#]],
    );
}

#[test]
fn json_syntax_error() {
    check(
        &["invalid/json_syntax_error.object.json"],
        expect![[r#"
            invalid/json_syntax_error.object.json:5: JSON syntax error at column 3: expected a key in double quotes; JSON keys are quoted, and a `,` may not come before `}`; nothing else in this file was checked
        "#]],
    );
}

#[test]
fn json_problems() {
    check(
        &["invalid/json_problems.object.json"],
        expect![[r#"
        invalid/json_problems.object.json:4: fields.subject.type: unknown field type `txt`; did you mean `text`? expected one of `text`, `textarea`, `email`, `url`, `phone`, `password`, `markdown`, `html`, `richtext`, `number`, `currency`, `percent`, `date`, `datetime`, `time`, `boolean`, `toggle`, `select`, `multiselect`, `radio`, `checkboxes`, `lookup`, `master_detail`, `tree`, `image`, `file`, `avatar`, `video`, `audio`, `formula`, `summary`, `autonumber`, `location`, `address`, `code`, `json`, `color`, `rating`, `slider`, `signature`, `qrcode`, `progress`, `tags`, `vector`, `secret`, `user`, `composite`, `repeater`, `record` or `object`
        invalid/json_problems.object.json:5: fields.owner: a `lookup` field needs `reference`: the name of the object it points to, such as `account`
    "#]],
    );
}

#[test]
fn system_field_name() {
    check(
        &["invalid/system_field_name.object.yml"],
        expect![[r#"
        invalid/system_field_name.object.yml:3: fields.id: `id` is a system field that every object gets automatically (`id`, `created_at`, `updated_at`, `created_by`, `updated_by`, `owner_id` or `organization_id`); remove it or choose another name
        invalid/system_field_name.object.yml:4: fields.created_at: `created_at` is a system field that every object gets automatically (`id`, `created_at`, `updated_at`, `created_by`, `updated_by`, `owner_id` or `organization_id`); remove it or choose another name
        invalid/system_field_name.object.yml:5: fields.owner_id: `owner_id` is a system field that every object gets automatically (`id`, `created_at`, `updated_at`, `created_by`, `updated_by`, `owner_id` or `organization_id`); remove it or choose another name
        invalid/system_field_name.object.yml:6: fields._id: `_id` is a system field that every object gets automatically (`id`, `created_at`, `updated_at`, `created_by`, `updated_by`, `owner_id` or `organization_id`); remove it or choose another name
    "#]],
    );
}

#[test]
fn computed_without_keys() {
    check(
        &["invalid/computed_without_keys.object.yml"],
        expect![[r#"
        invalid/computed_without_keys.object.yml:3: fields.tax: a `formula` field needs `expression`, such as `ROUND(total * 0.2, 2)`
        invalid/computed_without_keys.object.yml:5: fields.total: a `summary` field needs `summaryOperations: { object, field, function }`, such as `{ object: invoice_line, field: amount, function: sum }`
        invalid/computed_without_keys.object.yml:9: fields.line_count.summaryOperations.function: `total` is not allowed here; expected one of `count`, `sum`, `min`, `max` or `avg`
        invalid/computed_without_keys.object.yml:9: fields.line_count.summaryOperations.object: no object named `invoice_line`: neither the audited files nor the base preset define it; known objects include `invoice_summary`, `user`, `organization` or `role`
        invalid/computed_without_keys.object.yml:12: fields.average.summaryOperations: missing required key `field`: the child field to aggregate (only `count` needs none)
        invalid/computed_without_keys.object.yml:15: fields.manager_count.summaryOperations.field: `managr` is not a field of object `user`; did you mean `manager`?
    "#]],
    );
}

#[test]
fn autonumber_bad_format() {
    check(
        &["invalid/autonumber_bad_format.object.yml"],
        expect![[r#"
        invalid/autonumber_bad_format.object.yml:5: fields.number.autonumberFormat: autonumber format `CASE-{0000` has an unclosed `{`; expected a pattern such as `CASE-{0000}`
        invalid/autonumber_bad_format.object.yml:8: fields.ref.autonumberFormat: autonumber format `CASE` has no counter; add one such as `{0000}` (one 0 per digit), e.g. `CASE-{0000}`
        invalid/autonumber_bad_format.object.yml:11: fields.code.autonumberFormat: autonumber format `{PREFIX}-{0000}` has an unknown placeholder `{PREFIX}`; use `{0000}` for the counter (one 0 per digit) and `{YYYY}`, `{YY}`, `{MM}`, `{DD}` for the date
    "#]],
    );
}

#[test]
fn bad_value_types() {
    check(
        &["invalid/bad_value_types.object.yml"],
        expect![[r#"
        invalid/bad_value_types.object.yml:2: label: expected a string, found the number 5; put it in quotes
        invalid/bad_value_types.object.yml:3: active: expected true or false, found the string `yes`
        invalid/bad_value_types.object.yml:4: tags[1]: expected a string, found the number 7
        invalid/bad_value_types.object.yml:8: fields.subject.required: expected true or false, found the string `true`
        invalid/bad_value_types.object.yml:9: fields.subject.maxLength: expected a whole number >= 0, found the number -1
        invalid/bad_value_types.object.yml:10: fields.subject.min: expected a number, found the string `ten`
        invalid/bad_value_types.object.yml:13: fields.flag.defaultValue: expected true or false, found the string `no`
        invalid/bad_value_types.object.yml:17: fields.owner.deleteBehavior: `nullify` is not allowed here; expected one of `set_null`, `cascade` or `restrict`
        invalid/bad_value_types.object.yml:20: fields.count.deleteBehavior: warning: `deleteBehavior` has no effect on a `number` field; it applies to reference fields
    "#]],
    );
}

#[test]
fn unknown_field_refs() {
    check(
        &["invalid/unknown_field_refs.object.yml"],
        expect![[r#"
        invalid/unknown_field_refs.object.yml:2: displayNameField: `titel` is not a field of this object; fields are `subject`, `status` or `summary`
        invalid/unknown_field_refs.object.yml:3: titleFormat: `stauts` is not a field of this object; did you mean `status`?
        invalid/unknown_field_refs.object.yml:4: compactLayout[1]: `priority` is not a field of this object; fields are `subject`, `status` or `summary`
        invalid/unknown_field_refs.object.yml:12: fields.summary.dependencies[0]: `subjekt` is not a field of this object; did you mean `subject`?
        invalid/unknown_field_refs.object.yml:14: indexes[0].fields[1]: `created` is not a field of this object; fields are `subject`, `status` or `summary`
        invalid/unknown_field_refs.object.yml:15: indexes[1].name: duplicate index name `ticket_status` (first used at line 14)
        invalid/unknown_field_refs.object.yml:15: indexes[1].fields: an index needs at least one field
        invalid/unknown_field_refs.object.yml:16: indexes[2].type: `bitmap` is not allowed here; expected one of `btree`, `hash`, `gin`, `gist` or `fulltext`
    "#]],
    );
}

#[test]
fn root_not_mapping() {
    check(
        &["invalid/root_not_mapping.object.yml"],
        expect![[r#"
        invalid/root_not_mapping.object.yml:1: an object file must be a mapping, found a list
    "#]],
    );
}

#[test]
fn empty() {
    check(
        &["invalid/empty.object.yml"],
        expect![[r#"
        invalid/empty.object.yml:1: file is empty; expected a mapping
    "#]],
    );
}

#[test]
fn deep_nesting() {
    check(
        &["invalid/deep_nesting.object.yml"],
        expect![[r#"
        invalid/deep_nesting.object.yml:5: invalid YAML: nesting is deeper than 64 levels; metadata files may nest at most 64 mappings and lists
    "#]],
    );
}

#[test]
fn alias_bomb() {
    check(
        &["invalid/alias_bomb.object.yml"],
        expect![[r#"
        invalid/alias_bomb.object.yml:6: invalid YAML: the document is too large or expands too many aliases (limit `RecordedAnchorEvents` reached); metadata files may hold at most 200000 values with aliases expanded
    "#]],
    );
}

#[test]
fn duplicate_objects() {
    check(
        &[
            "invalid/duplicate_object_a.object.yml",
            "invalid/duplicate_object_b.object.yml",
        ],
        expect![[r#"
            invalid/duplicate_object_a.object.yml:1: name: object `ticket` is also defined in invalid/duplicate_object_b.object.yml:1; object names must be unique
            invalid/duplicate_object_b.object.yml:1: name: object `ticket` is also defined in invalid/duplicate_object_a.object.yml:1; object names must be unique
        "#]],
    );
}

#[test]
fn manifest_bad_id() {
    check(
        &["invalid/manifest_bad_id/manifest.yml"],
        expect![[r#"
        invalid/manifest_bad_id/manifest.yml:1: id: plugin id `AcmeCRM` is not a reverse-domain id; expected at least two dot-separated segments of lowercase letters, digits and `-`, starting with a letter, such as `com.acme.crm`
        invalid/manifest_bad_id/manifest.yml:5: namespace: namespace `Acme` is invalid; expected 2 to 20 lowercase letters, digits or `_`, starting with a letter (pattern ^[a-z][a-z0-9_]{1,19}$)
    "#]],
    );
}

#[test]
fn manifest_bad_semver() {
    check(
        &["invalid/manifest_bad_semver/objectstack.yml"],
        expect![[r#"
        invalid/manifest_bad_semver/objectstack.yml:3: version: version `1.0` is not a semantic version (unexpected end of input while parsing minor version number); expected MAJOR.MINOR.PATCH such as `1.0.0`
        invalid/manifest_bad_semver/objectstack.yml:4: type: `application` is not allowed here; expected one of `plugin`, `ui`, `driver`, `server`, `app`, `theme`, `agent`, `objectql`, `module`, `gateway` or `adapter`
        invalid/manifest_bad_semver/objectstack.yml:6: dependencies.com.objectos.platform: version range `^^0.1` of dependency `com.objectos.platform` is invalid (unexpected character '^' while parsing major version number); expected a semver requirement such as `^1.2` or `>=1.0, <2`
        invalid/manifest_bad_semver/objectstack.yml:7: dependencies.objectos: plugin id `objectos` is not a reverse-domain id; expected at least two dot-separated segments of lowercase letters, digits and `-`, starting with a letter, such as `com.acme.crm`
        invalid/manifest_bad_semver/objectstack.yml:8: dependencies.com.acme.crm: a plugin cannot depend on itself
    "#]],
    );
}

#[test]
fn manifest_unknown_names() {
    check(
        &["invalid/manifest_unknown_names/manifest.yml"],
        expect![[r#"
        invalid/manifest_unknown_names/manifest.yml:5: permissions[1]: unknown capability `data.delete`; expected one of `data.read`, `data.write`, `events.publish`, `events.subscribe`, `routes.mount`, `net.http`, `scripts.run`, `metadata.read`, `metadata.write`, `fs.read` or `fs.write`
        invalid/manifest_unknown_names/manifest.yml:5: permissions[2]: unknown capability `network`; expected one of `data.read`, `data.write`, `events.publish`, `events.subscribe`, `routes.mount`, `net.http`, `scripts.run`, `metadata.read`, `metadata.write`, `fs.read` or `fs.write`
        invalid/manifest_unknown_names/manifest.yml:6: provides[0]: unknown service `dta`; did you mean `data`? expected one of `data`, `metadata`, `auth`, `cache`, `queue`, `job`, `i18n`, `file-storage`, `search`, `realtime`, `notification`, `workflow`, `automation`, `graphql`, `analytics`, `ai`, `ui`, `http.server`, `audit-log`, `permissions`, `metrics` or `telemetry`
        invalid/manifest_unknown_names/manifest.yml:7: requires[1]: unknown service `mail`; expected one of `data`, `metadata`, `auth`, `cache`, `queue`, `job`, `i18n`, `file-storage`, `search`, `realtime`, `notification`, `workflow`, `automation`, `graphql`, `analytics`, `ai`, `ui`, `http.server`, `audit-log`, `permissions`, `metrics` or `telemetry`
        invalid/manifest_unknown_names/manifest.yml:8: emits[0]: event name `Invoice.Paid`: segment `Invoice` must be lowercase letters, digits, `_` or `-`, `*`, or a final `**`
        invalid/manifest_unknown_names/manifest.yml:8: emits[1]: event name `crm..x` has an empty segment
        invalid/manifest_unknown_names/manifest.yml:9: subscribes[0]: event name `data.**.x`: segment `**` must be lowercase letters, digits, `_` or `-`, `*`, or a final `**`
        invalid/manifest_unknown_names/manifest.yml:12: configuration.properties.level.type: `text` is not allowed here; expected one of `string`, `number`, `integer`, `boolean`, `object` or `array`
        invalid/manifest_unknown_names/manifest.yml:13: configuration.properties.mode: missing required key `type`: the JSON type: one of `string`, `number`, `integer`, `boolean`, `object` or `array`
    "#]],
    );
}

#[test]
fn manifest_json() {
    check(
        &["invalid/manifest_json/manifest.json"],
        expect![[r#"
            invalid/manifest_json/manifest.json:1: missing required key `name`: a human-readable name
            invalid/manifest_json/manifest.json:5: unknown key `permisions`; did you mean `permissions`?
        "#]],
    );
}

/// The whole folder at once, as `cargo xtask spec-audit` sees it: cross-file checks see every object.
#[test]
fn whole_invalid_folder() {
    let files = files_under("invalid");
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let report = audit(&refs);
    assert_eq!(report.files_checked, COVERED.len());
    for f in COVERED {
        assert!(
            report.diagnostics.iter().any(|d| d.file == *f),
            "{f} produced no diagnostic"
        );
    }
    let key = |d: &objectos_spec::diag::Diagnostic| {
        (
            !objectos_spec::yaml::is_unreadable(d),
            d.file.clone(),
            d.line,
        )
    };
    let sorted = report
        .diagnostics
        .windows(2)
        .all(|w| key(&w[0]) <= key(&w[1]));
    assert!(
        sorted,
        "diagnostics are sorted: unreadable files first, then by file and line"
    );
    assert!(objectos_spec::yaml::is_unreadable(&report.diagnostics[0]));
}

/// `*.permission.yml`, spec PermissionSet form: the types' own checks, located by line, and the
/// objects and fields it names checked against the audited objects (here: the base preset).
#[test]
fn bad_permission_set() {
    check(
        &["invalid/bad_permission_set.permission.yml"],
        expect![[r#"
            invalid/bad_permission_set.permission.yml:2: name: name "Directory Admin" is invalid; expected lowercase letters, digits and _, starting with a letter or _
            invalid/bad_permission_set.permission.yml:5: objects.organization: unknown key `alowRead`; did you mean `allowRead`?
            invalid/bad_permission_set.permission.yml:5: objects.organization.allowCreate: allowCreate needs allowRead
            invalid/bad_permission_set.permission.yml:6: objects.usr: no object named `usr`: neither the audited files nor the base preset define it; did you mean `user`? known objects include `user`, `organization` or `role`
            invalid/bad_permission_set.permission.yml:8: fields.user.email.editable: a field cannot be editable without being readable
            invalid/bad_permission_set.permission.yml:9: fields.user.phonenumber: `phonenumber` is not a field of object `user`
            invalid/bad_permission_set.permission.yml:10: fields.status: field permission key "status" is invalid; expected "object.field" such as "account.annual_revenue"
            invalid/bad_permission_set.permission.yml:16: rowLevelSecurity[1].name: policy name own_users is used twice in this set
            invalid/bad_permission_set.permission.yml:19: rowLevelSecurity[1].using: using has no effect on insert policies; use check
        "#]],
    );
}

/// Values of the wrong shape are reported first, each at its line.
#[test]
fn bad_permission_shapes() {
    check(
        &["invalid/bad_permission_shapes.permission.yml"],
        expect![[r#"
            invalid/bad_permission_shapes.permission.yml:2: missing required key `name`: the permission set's name, such as `sales_rep`
            invalid/bad_permission_shapes.permission.yml:4: objects.user.allowRead: expected true or false, found the string `yes please`
            invalid/bad_permission_shapes.permission.yml:5: objects.role: an object permission must be a mapping, found a list
            invalid/bad_permission_shapes.permission.yml:6: systemPermissions: expected a list of strings, found the string `manage_users`
            invalid/bad_permission_shapes.permission.yml:8: tabPermissions.admin: `shown` is not allowed here; expected one of `visible`, `hidden`, `default_on` or `default_off`
            invalid/bad_permission_shapes.permission.yml:12: rowLevelSecurity[0].operation: `read` is not allowed here; expected one of `select`, `insert`, `update`, `delete` or `all`
            invalid/bad_permission_shapes.permission.yml:14: rowLevelSecurity[1]: missing required key `name`: the policy's name
            invalid/bad_permission_shapes.permission.yml:14: rowLevelSecurity[1]: missing required key `object`: the object the policy restricts
            invalid/bad_permission_shapes.permission.yml:15: rowLevelSecurity[1].using: expected a string, found the number 42; put it in quotes
        "#]],
    );
}

/// The ObjectOS profile form (`objectName`, `profiles`, `fieldPermissions`).
#[test]
fn bad_profile() {
    check(
        &["invalid/bad_profile.permission.yml"],
        expect![[r#"
            invalid/bad_profile.permission.yml:3: objectName: no object named `usre`: neither the audited files nor the base preset define it; did you mean `user`? known objects include `user`, `organization` or `role`
            invalid/bad_profile.permission.yml:6: profiles.support.allowEdit: allowEdit needs allowRead
            invalid/bad_profile.permission.yml:8: profiles.Agent: name "Agent" is invalid; expected lowercase letters, digits and _, starting with a letter or _
            invalid/bad_profile.permission.yml:13: fieldPermissions.email.editableBy[0]: profile manager is not one of this file's profiles
            invalid/bad_profile.permission.yml:13: fieldPermissions.email.editableBy[0]: profile manager may edit the field but is not in visibleTo
        "#]],
    );
}
