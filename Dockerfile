# The operator image. It needs no registry: `make docker-build` compiles a
# static fljob binary on the host into bin/image/ and builds this file with
# that folder as the context.
FROM scratch
COPY fljob /fljob
USER 65532:65532
ENTRYPOINT ["/fljob"]
CMD ["operator", "--store=kubernetes", "--backend=kubernetes"]
