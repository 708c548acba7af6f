// Package deploy holds pgwarden's deployment files (kubernetes/) and the test
// that validates them: every manifest decodes strictly into the Kubernetes API
// types, references between them resolve, and the configuration they carry
// is one pgwarden accepts. It is a module of its own so that the Kubernetes
// API modules stay out of pgwarden's own dependencies.
package deploy
