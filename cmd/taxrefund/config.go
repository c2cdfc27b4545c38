package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"taxrefund/internal/anchor"
	"taxrefund/internal/authority"
	"taxrefund/internal/console"
	"taxrefund/internal/db"
	"taxrefund/internal/metrics"
	"taxrefund/internal/pdf"
	"taxrefund/internal/server"
)

// checkShare is the most of the time the periodic chain and invariant check keeps.
const checkShare = 0.1

// maxRegistryTTL bounds -registry-ttl: a revoked certificate or identity is refused
// within it (SECURITY.md, "Identities").
const maxRegistryTTL = 5 * time.Second

// config is read once from flags, with environment variables as defaults.
type config struct {
	databaseURL string
	// readDatabaseURL, when set, is where the reads that may lag go (the monthly report,
	// the reconciliation, the exports): a replica, or the cluster's hosts with
	// target_session_attrs=prefer-standby. Empty: they read the primary.
	readDatabaseURL string
	// dbRole, when set, is the one role every service acts as; empty: each service
	// acts as its own (db.Service.Role).
	dbRole string
	// services are what serve runs (-services).
	services       []db.Service
	servicesList   string
	addr           string
	certDir        string
	piiKeys        string
	maxConns       int
	paramsTTL      time.Duration
	registryTTL    time.Duration
	expiryInterval time.Duration
	// dispatchInterval is how often card acquirer instructions are delivered.
	dispatchInterval time.Duration
	// sealInterval is how often the journal and audit hash chains are extended.
	sealInterval time.Duration
	// debugAddr is the loopback address of the debug listener (pprof, pool statistics);
	// empty: none.
	debugAddr string
	// demoForms: seed also issues, verifies and pays demo forms of last and this month.
	demoForms bool
	// riskRules: seed also sets the risk rules' suggested thresholds (seeds/risk.sql).
	riskRules bool
	// callTimeout is the server's deadline of a unary call, registry check included.
	callTimeout time.Duration
	// metricsAddr is where Prometheus scrapes /metrics; empty: off.
	metricsAddr string
	// checkInterval is how often the server verifies the hash chains and the invariants
	// (at most: a round that took d is followed by a pause of at least 9d, checkShare).
	checkInterval time.Duration
	// checkFullInterval is how often a round verifies the chains from their first seal;
	// the rounds between verify what was sealed since the last one (metrics.Checks).
	checkFullInterval time.Duration
	// maxInFlight and partyInFlight bound the cost units in flight (server.Limits).
	maxInFlight, partyInFlight int
	// partyShare and partyWait: a caller's fair share of them and how long a call beyond
	// it waits on a busy server (server.Limits); share 0 is a quarter of -max-conns.
	partyShare int
	partyWait  time.Duration
	// connsPerAddr caps the connections of one client address.
	connsPerAddr int
	// certsSub is the certs subcommand (issue, rotate, revoke, suspend, reinstate); empty:
	// the development set. identity, certName, serial, reason and by are its flags.
	certsSub                               string
	identity, certName, serial, reason, by string
	// chromium is the browser that renders printed forms; empty: printing off.
	chromium string
	// travellerAddr is the traveller's status listener (gRPC and page, TLS without client
	// certificates); empty: off. travellerCert and travellerKey are its certificate
	// (default: the cert-dir's server.pem).
	travellerAddr, travellerCert, travellerKey string
	// journalKey is the checkpoints' signing key file, journalPubKeys the public keys of
	// every key that signed, checkpoints the checkpoint file (internal/anchor).
	journalKey, journalPubKeys, checkpoints string
	// checkpointInterval is how often serve signs the chain heads (besides month closes).
	checkpointInterval time.Duration
	// rotate: keys replaces the signing key.
	rotate bool
	// consoleAddr is the HTTPS listener of the browser console; empty: off. consoleURL is
	// where browsers reach it (default https://<consoleAddr>).
	consoleAddr, consoleURL string
	// consoleIdle signs a console session out after this long unused.
	consoleIdle time.Duration
	// consoleReportMaxAge is the age of figures the officials' month page accepts from
	// the report cache; 0: computed for every view.
	consoleReportMaxAge time.Duration
	// tuning is how the pool behaves across a failover (health checks, connection
	// lifetime, the commit wait).
	tuning db.Tuning
	// getenv reads the OTEL_* variables of the trace exporter.
	getenv func(string) string
}

func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: taxrefund %s [flags]\n\nflags:\n", name)
		fs.PrintDefaults()
	}
	// Each command registers the flags it reads, so that its -h lists only those.
	has := func(cmds ...string) bool { return slices.Contains(cmds, name) }
	c := config{
		getenv: getenv,
		addr:   "127.0.0.1:50051", maxConns: 16, paramsTTL: 30 * time.Second, registryTTL: 2 * time.Second,
		expiryInterval: time.Minute, dispatchInterval: 2 * time.Second, sealInterval: time.Second,
		tuning: db.DefaultTuning(),
	}
	fs.StringVar(&c.databaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	if has("serve", "expire", "rekey") {
		fs.StringVar(&c.dbRole, "db-role", env("TAXREFUND_DB_ROLE", ""), "one database role for every service (SET ROLE), e.g. "+db.AppRole+" (the union of the services' roles) or the URL's user; empty: each service acts as its own, taxrefund_store, taxrefund_desk, taxrefund_authority, taxrefund_jobs (env TAXREFUND_DB_ROLE)")
	}
	if has("serve") {
		fs.StringVar(&c.servicesList, "services", env("TAXREFUND_SERVICES", "all"), "what this process serves, comma-separated: store (StoreService), desk (DeskService and AgencyService), authority (AuthorityService), jobs (expiry, captures, sealing, acquirer dispatch, checks, business metrics); all: every one. Each acts as its own database role, with a pool of -max-conns (env TAXREFUND_SERVICES)")
		fs.StringVar(&c.readDatabaseURL, "read-database-url", env("TAXREFUND_READ_DATABASE_URL", ""), "PostgreSQL URL of a replica for the reads that may lag (monthly report, reconciliation, exports), which then state the replica's lag; e.g. the cluster's hosts with target_session_attrs=prefer-standby. Nothing that decides money reads it. Empty: every read goes to -database-url (env TAXREFUND_READ_DATABASE_URL)")
		fs.StringVar(&c.addr, "addr", env("TAXREFUND_ADDR", "127.0.0.1:50051"), "gRPC listen address (env TAXREFUND_ADDR)")
	}
	if _, sub, ok := strings.Cut(name, " "); ok && strings.HasPrefix(name, "certs ") {
		c.certsSub = sub
	}
	if has("serve", "certs", "certs issue", "certs rotate") {
		fs.StringVar(&c.certDir, "cert-dir", env("TAXREFUND_CERT_DIR", ".data/certs"), "CA and server certificate directory (env TAXREFUND_CERT_DIR)")
	}
	if c.certsSub != "" {
		what := map[string]string{
			"issue":     "identity to register and issue a certificate for, e.g. taxrefund://desk/CKG-01/cashier-02",
			"rotate":    "registered identity to give a new certificate; its other certificates are revoked once the new one is registered",
			"revoke":    "identity (a person or refund point) to revoke for good, with every certificate bound to it",
			"suspend":   "identity to suspend (its certificates are refused until it is reinstated)",
			"reinstate": "suspended identity to reinstate",
		}[c.certsSub]
		fs.StringVar(&c.identity, "uri", "", what)
		fs.StringVar(&c.by, "by", getenv("USER"), "who makes the change, recorded in the audit log as certs:<by> (env USER)")
	}
	if has("certs issue", "certs rotate") {
		fs.StringVar(&c.certName, "name", "", "file name of the pair in -cert-dir, <name>.pem and <name>-key.pem (default: the URI's role and segments joined by '-', e.g. desk-CKG-01-cashier-02)")
	}
	if has("certs rotate", "certs revoke", "certs suspend", "certs reinstate") {
		fs.StringVar(&c.reason, "reason", "", "why, recorded in the register and the audit log (required to revoke or suspend)")
	}
	if has("certs revoke") {
		fs.StringVar(&c.serial, "serial", "", "serial number in hex of the one certificate to revoke (as openssl prints it, colons allowed); instead of -uri")
	}
	if has("seed") {
		fs.BoolVar(&c.demoForms, "demo-forms", false, "also issue, verify and pay demo forms in the previous and the current month (needs -pii-keys)")
		fs.BoolVar(&c.riskRules, "risk-rules", false, "also set the risk rules' suggested thresholds (seeds/risk.sql): customs then see forms RED (DOMAIN.md §8a)")
	}
	if has("serve", "certs", "expire", "rekey", "seed") {
		fs.StringVar(&c.piiKeys, "pii-keys", env("TAXREFUND_PII_KEYS", ".data/pii.keys"), "key file for travellers' document numbers (env TAXREFUND_PII_KEYS)")
	}
	if has("serve", "expire", "rekey") {
		fs.IntVar(&c.maxConns, "max-conns", 16, "database pool size, per service (-services)")
		fs.DurationVar(&c.paramsTTL, "params-ttl", 30*time.Second, "how long parameters are cached")
	}
	if has("serve") {
		fs.DurationVar(&c.registryTTL, "registry-ttl", 2*time.Second, "how long a party's registry status, identity and revocations are cached (at most 5s: a revocation takes effect within it)")
		fs.DurationVar(&c.expiryInterval, "expiry-interval", time.Minute, "how often the server expires overdue forms and captures due pre-authorizations (0: never)")
		fs.DurationVar(&c.dispatchInterval, "dispatch-interval", 2*time.Second, "how often acquirer instructions are delivered, to the development acquirer (0: never)")
		fs.StringVar(&c.debugAddr, "debug-addr", env("TAXREFUND_DEBUG_ADDR", ""), "loopback address for Go's profiles (/debug/pprof/) and the pool's statistics (/debug/pool); empty: off (env TAXREFUND_DEBUG_ADDR)")
		fs.DurationVar(&c.sealInterval, "seal-interval", time.Second, "how often new journal and audit rows are sealed into their hash chains (0: never)")
	}
	if has("serve") {
		fs.DurationVar(&c.callTimeout, "call-timeout", server.DefaultDeadline, "server-side deadline of every unary call, authorization included; a caller's shorter deadline stands")
		fs.StringVar(&c.metricsAddr, "metrics-addr", env("TAXREFUND_METRICS_ADDR", "127.0.0.1:9464"), "address of the Prometheus /metrics listener, apart from gRPC; empty: off (env TAXREFUND_METRICS_ADDR)")
		def := server.DefaultLimits()
		fs.IntVar(&c.maxInFlight, "max-in-flight", def.MaxInFlight, "cost units in flight of all callers before RESOURCE_EXHAUSTED (a GetForm costs 1, a report 32; 0: no limit)")
		fs.IntVar(&c.partyInFlight, "party-in-flight", def.PartyInFlight, "most cost units in flight of one caller, reached only while the server has room to spare; over it RESOURCE_EXHAUSTED at once (0: no limit)")
		fs.IntVar(&c.partyShare, "party-share", 0, "cost units in flight of one caller admitted however busy the server; beyond them a call waits (-party-wait) for the caller's own calls (0: a quarter of -max-conns)")
		fs.DurationVar(&c.partyWait, "party-wait", def.PartyWait, "how long a call beyond its caller's share waits on a busy server before RESOURCE_EXHAUSTED (0: refused at once)")
		fs.IntVar(&c.connsPerAddr, "max-conns-per-addr", server.DefaultConnsPerAddr, "most gRPC connections open at once from one client IP (0: no cap)")
		fs.StringVar(&c.chromium, "chromium", env("TAXREFUND_CHROMIUM", pdf.DefaultChromium), "Chromium executable that renders printed forms (GetFormDocument), started at the first print; empty: printing off (env TAXREFUND_CHROMIUM)")
		fs.StringVar(&c.travellerAddr, "traveller-addr", env("TAXREFUND_TRAVELLER_ADDR", ""), "address of the travellers' refund status listener: TravellerService over gRPC and the status page over HTTPS, no client certificate; empty: off (env TAXREFUND_TRAVELLER_ADDR)")
		fs.StringVar(&c.travellerCert, "traveller-cert", env("TAXREFUND_TRAVELLER_CERT", ""), "certificate (PEM) of the traveller listener, one travellers' phones trust; empty: the cert-dir's server.pem (env TAXREFUND_TRAVELLER_CERT)")
		fs.StringVar(&c.travellerKey, "traveller-key", env("TAXREFUND_TRAVELLER_KEY", ""), "its key; empty: the cert-dir's server-key.pem (env TAXREFUND_TRAVELLER_KEY)")
		fs.StringVar(&c.consoleAddr, "console-addr", env("TAXREFUND_CONSOLE_ADDR", ""), "HTTPS address of the browser console for customs, cashiers and officials (server certificate; sign in with `refundctl console`); empty: off (env TAXREFUND_CONSOLE_ADDR)")
		fs.StringVar(&c.consoleURL, "console-url", env("TAXREFUND_CONSOLE_URL", ""), "the console's address as browsers reach it, for sign-in links (default https://<console-addr>) (env TAXREFUND_CONSOLE_URL)")
		fs.DurationVar(&c.consoleIdle, "console-idle", console.DefaultIdleTimeout, "a console session unused this long is signed out")
		fs.DurationVar(&c.consoleReportMaxAge, "console-report-max-age", console.DefaultReportMaxAge, "the officials' month page shows figures up to this old from the server's report cache (refreshed in the background past half of it), saying as of when, with a link to recompute now; exports and the PDF for signature are always computed now. At most 1h; 0: computed for every view")
		fs.DurationVar(&c.tuning.HealthCheckPeriod, "db-health-check-period", c.tuning.HealthCheckPeriod, "how often idle pool connections are checked, so those to a failed or demoted primary go before a call takes them")
		fs.DurationVar(&c.tuning.MaxConnLifetime, "db-max-conn-lifetime", c.tuning.MaxConnLifetime, "a pool connection is closed after this long (none stays on a server that stopped being the primary)")
		fs.DurationVar(&c.tuning.CommitWait, "db-commit-wait", c.tuning.CommitWait, "how long a COMMIT may wait for the synchronous standby, whatever the caller's deadline; never cancelled early (OPERATIONS.md, High availability)")
		fs.DurationVar(&c.checkInterval, "check-interval", 10*time.Minute, "how often the server verifies the journal and audit hash chains and the ledger invariants, for the metrics; after a round that took d the next waits at least 9d, so the check keeps a tenth of the time as history grows (0: never)")
		fs.DurationVar(&c.checkFullInterval, "check-full-interval", 24*time.Hour, "how often that check verifies the hash chains from their first seal and looks for rows outside them; the rounds between verify only what was sealed since the last round (0: every round)")
	}
	if has("serve", "keys") {
		fs.StringVar(&c.journalKey, "journal-key", env("TAXREFUND_JOURNAL_KEY", anchor.DefaultKeyFile), "Ed25519 key that signs the hash chains' checkpoints, mode 0600, out of the database's reach (env TAXREFUND_JOURNAL_KEY)")
	}
	if has("serve", "keys", "verify") {
		fs.StringVar(&c.journalPubKeys, "journal-pubkeys", env("TAXREFUND_JOURNAL_PUBKEYS", anchor.DefaultPublicKeyFile), "public keys of every journal key that signed checkpoints, kept across rotations (env TAXREFUND_JOURNAL_PUBKEYS)")
	}
	if has("serve", "verify") {
		fs.StringVar(&c.checkpoints, "checkpoints", env("TAXREFUND_CHECKPOINTS", anchor.DefaultCheckpointFile), "append-only file of signed chain checkpoints, one JSON line each (env TAXREFUND_CHECKPOINTS)")
	}
	if has("serve") {
		fs.DurationVar(&c.checkpointInterval, "checkpoint-interval", 24*time.Hour, "how often the chain heads are signed into the checkpoint file, besides at start and at every month close (at most 24h)")
	}
	if has("keys") {
		fs.BoolVar(&c.rotate, "rotate", false, "replace the signing key with a new one; its public key joins the old ones in -journal-pubkeys")
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (taxrefund %s -h lists the flags)", fs.Arg(0), name)
	}
	if err := c.checkCertsFlags(); err != nil {
		return config{}, err
	}
	if c.databaseURL == "" && name != "keys" {
		return config{}, errors.New("DATABASE_URL is not set (or pass -database-url)")
	}
	if has("serve") {
		services, err := db.ParseServices(c.servicesList)
		if err != nil {
			return config{}, fmt.Errorf("-services: %w", err)
		}
		c.services = services
	}
	if c.maxConns < 1 || c.maxConns > 1000 {
		return config{}, fmt.Errorf("-max-conns %d: must be 1 to 1000", c.maxConns)
	}
	if c.metricsAddr != "" {
		if err := metrics.CheckAddr(c.metricsAddr); err != nil {
			return config{}, err
		}
	}
	if c.debugAddr != "" {
		if err := server.CheckDebugAddr(c.debugAddr); err != nil {
			return config{}, err
		}
	}
	if name == "serve" && (c.checkpointInterval <= 0 || c.checkpointInterval > 24*time.Hour) {
		return config{}, fmt.Errorf("-checkpoint-interval %v: must be more than 0 and at most 24h (checkpoints are at least daily)", c.checkpointInterval)
	}
	if c.consoleReportMaxAge < 0 || c.consoleReportMaxAge > authority.MaxReportAge {
		return config{}, fmt.Errorf("-console-report-max-age %v: must be 0 (computed for every view) to %v", c.consoleReportMaxAge, authority.MaxReportAge)
	}
	if c.consoleAddr != "" && c.consoleURL == "" {
		c.consoleURL = "https://" + c.consoleAddr
	}
	if c.paramsTTL < 0 || c.consoleIdle < 0 || c.registryTTL < 0 || c.expiryInterval < 0 || c.dispatchInterval < 0 || c.sealInterval < 0 || c.callTimeout < 0 || c.checkInterval < 0 || c.checkFullInterval < 0 ||
		c.tuning.HealthCheckPeriod < 0 || c.tuning.MaxConnLifetime < 0 || c.tuning.CommitWait < 0 {
		return config{}, errors.New("durations must not be negative")
	}
	if c.registryTTL > maxRegistryTTL {
		return config{}, fmt.Errorf("-registry-ttl %v: at most %v, so that a suspension or revocation takes effect within it", c.registryTTL, maxRegistryTTL)
	}
	return c, nil
}

// checkCertsFlags checks the flags of a certs subcommand.
func (c config) checkCertsFlags() error {
	switch c.certsSub {
	case "":
		return nil
	case "revoke":
		if (c.serial == "") == (c.identity == "") {
			return errors.New("certs revoke: give either -serial (one certificate) or -uri (a person or point, with all its certificates)")
		}
	default:
		if c.identity == "" {
			return fmt.Errorf("certs %s: -uri is required", c.certsSub)
		}
	}
	if (c.certsSub == "revoke" || c.certsSub == "suspend") && strings.TrimSpace(c.reason) == "" {
		return fmt.Errorf("certs %s: -reason is required", c.certsSub)
	}
	if strings.TrimSpace(c.by) == "" {
		return fmt.Errorf("certs %s: -by is required (who makes the change, for the audit log; USER is not set)", c.certsSub)
	}
	return nil
}
