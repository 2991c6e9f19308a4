// Validates OpenAPI / Swagger documents with @apidevtools/swagger-parser
// (the parser bot platforms' importers are built on); exits 1 on the
// first invalid one. Usage: node validate-openapi.cjs MODULES_DIR FILE...
const path = require("path");
const SwaggerParser = require(path.join(process.argv[2], "@apidevtools/swagger-parser"));
(async () => {
  let failed = 0;
  for (const file of process.argv.slice(3)) {
    try {
      const api = await SwaggerParser.validate(file);
      console.log(`${file}: valid ${api.swagger ? "Swagger " + api.swagger : "OpenAPI " + api.openapi}`);
    } catch (e) {
      failed++;
      console.log(`${file}: INVALID ${e.message}`);
    }
  }
  process.exit(failed ? 1 : 0);
})();
