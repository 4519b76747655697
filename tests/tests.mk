# make test: everything in tests/, counted by tests/run-all.sh, which ends
# with the line "N passed, M failed".
.PHONY: test
test:
	@tests/run-all.sh $(ARCH)
