// Program otelcol-agent-otel is agent-otel's minimal OpenTelemetry Collector: exactly the components that
// src/agent_otel/assets/collector/otelcol.yaml and gateway.yaml use, from one Collector release (see
// builder-config.yaml). Build it with `make collector`; the result is bin/otelcol-agent-otel.

package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	envprovider "go.opentelemetry.io/collector/confmap/provider/envprovider"
	fileprovider "go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
)

func main() {
	info := component.BuildInfo{
		Command:     "otelcol-agent-otel",
		Description: "agent-otel's OpenTelemetry Collector (agent and gateway configs)",
		Version:     "0.161.0-agent-otel",
	}

	set := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
				},
			},
		},
	}

	if err := otelcol.NewCommand(set).Execute(); err != nil {
		log.Fatalf("collector server run finished with error: %v", err)
	}
}
