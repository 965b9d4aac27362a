//! Security metadata: permission sets, object and field permissions, RLS policies, sharing rules, roles and policies.
