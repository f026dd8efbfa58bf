# The two commands of the README:
#   make run   set up .venv and run the daemon on the simulated default config
#   make test  set up .venv and run the whole test suite
# Both create the virtual environment they need on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/edge-agent.toml

.PHONY: run test lint check clean install demo demo-clean

# On the device, as root: `sudo make install`.  Creates the edge-agent user, a venv in
# $(PREFIX), /etc/edge-agent/edge-agent.toml (the simulated setup, if none exists yet),
# installs and starts the systemd unit.  Re-running upgrades the code, keeps the config.
PREFIX  ?= /opt/edge-agent
ETC     ?= /etc/edge-agent
UNITDIR ?= /etc/systemd/system

# Four distributions, one repository (docs/ARCHITECTURE.md, "Packaging"): the drivers
# library, the protocol shared by device and cloud, the device package, the cloud services.
$(BIN)/.installed: pyproject.toml protocol/pyproject.toml drivers/pyproject.toml cloud/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edge-agent needs Python 3.11 or newer (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
# -W: setuptools' "Editable installation" notice (information only, one per package) is not
# printed four times over a quiet install; any other warning still is.
	$(BIN)/python -W 'ignore:Editable installation:UserWarning' -m pip install --quiet -e ./protocol -e './drivers[modbus]' -e ./cloud -e '.[dev,fast,bench]'
	@touch $@

# The daemon on simulated sensors; it forwards to the MQTT broker on localhost:1883
# (apt install mosquitto) and buffers everything while there is none.
run: $(BIN)/.installed
	$(BIN)/edge-agent run --config $(CONFIG)

# The whole system on this machine: a private Mosquitto on the auth service's files, edge-auth,
# edge-ingest (SQLite), three simulated devices enrolled and running end to end.  State in
# state/demo/ (kept: a second run reuses it); Ctrl-C stops it all.  Needs mosquitto installed.
demo: $(BIN)/.installed
	$(BIN)/python -m demo

demo-clean:
	rm -rf state/demo

# Four workers on two cores: most of the suite waits on real processes (brokers, daemons,
# power cuts), not on the CPU.  TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
test: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy edge_agent drivers/edge_drivers protocol/edge_protocol cloud/edge_cloud demo

check: test lint

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

install:
	@test "$$(id -u)" = 0 || { echo "make install must run as root (sudo make install)"; exit 1; }
	getent group i2c >/dev/null || groupadd --system i2c
	getent group dialout >/dev/null || groupadd --system dialout
	id -u edge-agent >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/edge-agent \
		--no-create-home --shell /usr/sbin/nologin edge-agent
	usermod -a -G i2c,dialout edge-agent
	$(PYTHON) -m venv $(PREFIX)
	$(PREFIX)/bin/python -m pip install --quiet --upgrade pip
	@# pip builds in the checkout: a stale build/lib would bring deleted modules back, and
	@# the build files must stay the checkout owner's (or `make test` cannot write them).
	@# The device gets the protocol, the drivers and the agent: no cloud code.  pymodbus (a Modbus
	@# sensor) and fpdf2 (a calibration certificate) are imported only when used: no RSS otherwise.
	for d in protocol drivers .; do rm -rf $$d/build; done
	$(PREFIX)/bin/python -m pip install --quiet ./protocol './drivers[modbus]' '.[certificate]'
	for d in protocol drivers .; do chown -R --reference=. $$d/build $$d/*.egg-info; done
	ln -sf $(PREFIX)/bin/edge-agent /usr/local/bin/edge-agent
	install -d -m 0755 $(ETC)
	test -e $(ETC)/edge-agent.toml || { \
		sed 's#^state_dir = .*#state_dir = "/var/lib/edge-agent"#' config/edge-agent.toml > $(ETC)/edge-agent.toml; \
		chown root:edge-agent $(ETC)/edge-agent.toml; chmod 0640 $(ETC)/edge-agent.toml; }
	$(PREFIX)/bin/edge-agent config check --config $(ETC)/edge-agent.toml
	install -m 0644 systemd/edge-agent.service $(UNITDIR)/edge-agent.service
	systemctl daemon-reload
	systemctl enable edge-agent
	systemctl restart edge-agent
	@echo "edge-agent installed: systemctl status edge-agent; edge-agent status; curl 127.0.0.1:9108/metrics"
