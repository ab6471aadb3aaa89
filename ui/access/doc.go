// Package access owns who may do what on the appliance's HTTP side: user
// accounts with roles (administrator, operator, viewer, restore-only),
// passwords (bcrypt, strength enforced), browser sessions with their CSRF
// tokens, API tokens for automation, and login throttling and lockout.
//
// Accounts and API tokens are kept in users.json and tokens.json in the
// directory given to Open (mode 0600, written atomically); API tokens are
// stored only as SHA-256 hashes and shown once when created. Sessions live
// in memory: a restart of the appliance logs everyone out.
//
// Roles map to permissions (see Role.Can); the HTTP layer declares one
// permission per route and checks it with the caller's role.
package access
