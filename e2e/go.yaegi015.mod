module github.com/sysmayal/socketioguard/e2e

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/mitchellh/mapstructure v1.5.1-0.20231216201459-8508981c8b6c
	github.com/prometheus/client_model v0.6.1
	github.com/prometheus/common v0.62.0
	github.com/traefik/paerser v0.2.2
	github.com/traefik/yaegi v0.15.1
	golang.org/x/image v0.48.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/BurntSushi/toml v1.4.0 // indirect
	github.com/kr/pretty v0.3.1 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	google.golang.org/protobuf v1.36.1 // indirect
)
