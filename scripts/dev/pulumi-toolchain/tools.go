//go:build tools

// Package tools pins the Pulumi CLI's main package. pkg/go.mod has replace directives, so
// `go install github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@vX` is refused; a dependency's
// replace directives are ignored, so this wrapper module requires pkg/v3 and builds it.
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
