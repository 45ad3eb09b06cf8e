// The ONNX reader on real models from Debian's libonnx-testdata (their facts are known from the ONNX
// backend test generators) and on hostile models built with the ONNX protobuf classes.

#include "formats/onnx.hpp"
#include "formats/parse_error.hpp"
#include "formats_test_util.hpp"

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

using namespace modelmgr::formats;
using modelmgr::formats::testing::TempDir;
using modelmgr::formats::testing::write_file;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

const std::filesystem::path k_testdata = "/usr/share/libonnx-testdata/data";

std::filesystem::path testdata_model(const std::string& rel)
{
  const auto p = k_testdata / rel / "model.onnx";
  if (!std::filesystem::exists(p)) {
    throw std::runtime_error(p.string() + " is missing: install libonnx-testdata (scripts/deps.sh)");
  }
  return p;
}

std::vector<std::byte> serialize(const onnx::ModelProto& m)
{
  const std::string s = m.SerializeAsString();
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

// A small valid model: y = MatMul(x, W) + b with two float initializers.
onnx::ModelProto small_model()
{
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("modelmgr-test");
  m.set_producer_version("1");
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("tiny");
  auto* in = g->add_input();
  in->set_name("x");
  auto* tt = in->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto_DataType_FLOAT);
  tt->mutable_shape()->add_dim()->set_dim_param("batch");
  tt->mutable_shape()->add_dim()->set_dim_value(4);
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto_DataType_FLOAT);
  auto* w = g->add_initializer();
  w->set_name("W");
  w->set_data_type(onnx::TensorProto_DataType_FLOAT);
  w->add_dims(4);
  w->add_dims(3);
  w->set_raw_data(std::string(48, '\0'));
  auto* b = g->add_initializer();
  b->set_name("b");
  b->set_data_type(onnx::TensorProto_DataType_FLOAT16);
  b->add_dims(3);
  for (int i = 0; i < 3; ++i) {
    b->add_int32_data(0);
  }
  auto* n1 = g->add_node();
  n1->set_op_type("MatMul");
  n1->add_input("x");
  n1->add_input("W");
  n1->add_output("xw");
  auto* n2 = g->add_node();
  n2->set_op_type("Add");
  n2->add_input("xw");
  n2->add_input("b");
  n2->add_output("y");
  return m;
}

OnnxModel parse_model(const onnx::ModelProto& m)
{
  const MemoryByteSource src(serialize(m));
  return parse_onnx(src, "model.onnx");
}

std::string error_of(const onnx::ModelProto& m)
{
  try {
    parse_model(m);
  } catch (const ParseError& e) {
    return e.what();
  }
  return "no error";
}

void set_external(onnx::TensorProto* t, const std::string& location, const std::string& offset = {},
                  const std::string& length = {})
{
  t->clear_raw_data();
  t->set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
  auto* kv = t->add_external_data();
  kv->set_key("location");
  kv->set_value(location);
  if (!offset.empty()) {
    kv = t->add_external_data();
    kv->set_key("offset");
    kv->set_value(offset);
  }
  if (!length.empty()) {
    kv = t->add_external_data();
    kv->set_key("length");
    kv->set_value(length);
  }
}

} // namespace

TEST(OnnxTestdata, AddNodeModel)
{
  const auto m = parse_onnx_file(testdata_model("node/test_add"));
  EXPECT_EQ(m.ir_version, 7);
  EXPECT_EQ(m.default_opset(), 14);
  EXPECT_EQ(m.producer_name, "backend-test");
  EXPECT_EQ(m.graph_name, "test_add");
  ASSERT_EQ(m.inputs.size(), 2u);
  EXPECT_EQ(m.inputs[0].name, "x");
  EXPECT_EQ(m.inputs[0].element_type, "float");
  EXPECT_EQ(m.inputs[0].shape_string(), "[3, 4, 5]");
  EXPECT_EQ(m.inputs[1].name, "y");
  ASSERT_EQ(m.outputs.size(), 1u);
  EXPECT_EQ(m.outputs[0].name, "sum");
  EXPECT_EQ(m.node_count, 1u);
  EXPECT_EQ(m.op_types.at("Add"), 1u);
  EXPECT_EQ(m.initializer_count, 0u);
  EXPECT_EQ(m.parameter_count, 0u);
}

TEST(OnnxTestdata, PytorchConv2dWithInitializers)
{
  // Exported by PyTorch 0.3 at IR 3, where every initializer is also listed as a graph input.
  const auto m = parse_onnx_file(testdata_model("pytorch-converted/test_Conv2d"));
  EXPECT_EQ(m.ir_version, 3);
  EXPECT_EQ(m.default_opset(), 6);
  EXPECT_EQ(m.producer_name, "pytorch");
  EXPECT_EQ(m.producer_version, "0.3");
  ASSERT_EQ(m.inputs.size(), 1u); // the initializers are not reported as inputs
  EXPECT_EQ(m.inputs[0].shape_string(), "[2, 3, 7, 5]");
  EXPECT_EQ(m.outputs[0].shape_string(), "[2, 4, 5, 4]");
  EXPECT_EQ(m.initializer_count, 2u);
  EXPECT_EQ(m.parameter_count, 76u); // Conv2d(3, 4, (3, 2)): 4*3*3*2 weights + 4 biases
  EXPECT_EQ(m.initializer_bytes, 76u * 4);
  EXPECT_EQ(m.op_types.at("Conv"), 1u);
  ASSERT_EQ(m.initializer_types.size(), 1u);
  EXPECT_EQ(m.initializer_types[0].element_type, "float");
}

TEST(OnnxTestdata, SymbolicDimsAndSequences)
{
  const auto m = parse_onnx_file(testdata_model("node/test_sequence_map_add_1_sequence_1_tensor"));
  EXPECT_EQ(m.default_opset(), 17);
  ASSERT_EQ(m.inputs.size(), 2u);
  EXPECT_EQ(m.inputs[0].kind, "sequence");
  EXPECT_EQ(m.inputs[0].element_type, "sequence<tensor(float)>");
  EXPECT_EQ(m.inputs[0].shape_string(), "?");
  EXPECT_EQ(m.inputs[1].shape_string(), "[N]");
}

TEST(OnnxTestdata, SubgraphNodesAreCounted)
{
  const auto m = parse_onnx_file(testdata_model("node/test_if"));
  EXPECT_EQ(m.node_count, 1u);
  EXPECT_GT(m.subgraph_node_count, 0u);
}

TEST(OnnxParse, BuiltModelFacts)
{
  const auto m = parse_model(small_model());
  EXPECT_EQ(m.ir_version, 8);
  ASSERT_EQ(m.inputs.size(), 1u);
  EXPECT_EQ(m.inputs[0].shape_string(), "[batch, 4]");
  EXPECT_EQ(m.outputs[0].shape_string(), "?");
  EXPECT_EQ(m.initializer_count, 2u);
  EXPECT_EQ(m.parameter_count, 15u);
  EXPECT_EQ(m.initializer_bytes, 48u + 6u);
  EXPECT_EQ(m.node_count, 2u);
  ASSERT_EQ(m.initializer_types.size(), 2u);
  EXPECT_EQ(m.initializer_types[0].element_type, "float");
  EXPECT_EQ(m.initializer_types[1].element_type, "float16");
}

TEST(OnnxParse, ExternalDataIsCheckedNextToTheModel)
{
  TempDir dir;
  auto proto = small_model();
  set_external(proto.mutable_graph()->mutable_initializer(0), "weights.bin", "64");
  write_file(dir.path() / "model.onnx", serialize(proto));

  // Missing file.
  try {
    parse_onnx_file(dir.path() / "model.onnx");
    FAIL() << "expected a ParseError";
  } catch (const ParseError& e) {
    EXPECT_THAT(e.what(), HasSubstr("external data file 'weights.bin'"));
    EXPECT_THAT(e.what(), HasSubstr("missing"));
  }
  // Too short: 64 + 48 bytes needed.
  write_file(dir.path() / "weights.bin", std::vector<std::byte>(100));
  EXPECT_THROW(parse_onnx_file(dir.path() / "model.onnx"), ParseError);
  const MemoryByteSource src(serialize(proto));
  const auto m = parse_onnx(src, "model.onnx");
  EXPECT_THAT(check_onnx_external_data(m, dir.path()), ElementsAre(HasSubstr("exceeds the size 100")));
  // Big enough.
  write_file(dir.path() / "weights.bin", std::vector<std::byte>(112));
  const auto ok = parse_onnx_file(dir.path() / "model.onnx");
  EXPECT_EQ(ok.external_bytes, 48u);
  EXPECT_EQ(ok.parameter_count, 15u);
  EXPECT_EQ(ok.initializer_bytes, 54u);
  EXPECT_THAT(ok.external_files(), ElementsAre("weights.bin"));
}

TEST(OnnxErrors, ExternalLocationsOutsideTheFolderAreRefused)
{
  for (const std::string loc : {"../secret", "/etc/passwd", "a/../../b", "a\\b"}) {
    auto proto = small_model();
    set_external(proto.mutable_graph()->mutable_initializer(0), loc);
    EXPECT_THAT(error_of(proto), HasSubstr("not a relative path inside the model's folder")) << loc;
  }
  auto proto = small_model();
  set_external(proto.mutable_graph()->mutable_initializer(0), "w.bin", "x");
  EXPECT_THAT(error_of(proto), HasSubstr("offset 'x' is not a non-negative integer"));
  proto = small_model();
  set_external(proto.mutable_graph()->mutable_initializer(0), "w.bin", "0", "47");
  EXPECT_THAT(error_of(proto), HasSubstr("length 47 but the tensor needs 48 bytes"));
  proto = small_model();
  set_external(proto.mutable_graph()->mutable_initializer(0), "w.bin", "18446744073709551615");
  EXPECT_THAT(error_of(proto), HasSubstr("overflows"));
}

TEST(OnnxErrors, InconsistentInitializers)
{
  auto proto = small_model();
  proto.mutable_graph()->mutable_initializer(0)->set_raw_data(std::string(47, '\0'));
  EXPECT_THAT(error_of(proto),
              HasSubstr("initializer 'W': raw_data holds 47 bytes but float x 4x3 needs 48"));

  proto = small_model();
  proto.mutable_graph()->mutable_initializer(1)->add_int32_data(1);
  EXPECT_THAT(error_of(proto), HasSubstr("4 stored values for 3 elements of float16"));

  proto = small_model();
  proto.mutable_graph()->mutable_initializer(0)->set_dims(0, -4);
  EXPECT_THAT(error_of(proto), HasSubstr("negative dimension -4"));

  proto = small_model();
  auto* huge = proto.mutable_graph()->mutable_initializer(0);
  huge->set_dims(0, std::int64_t{1} << 40);
  huge->set_dims(1, std::int64_t{1} << 40);
  EXPECT_THAT(error_of(proto), HasSubstr("element count overflows"));

  proto = small_model();
  proto.mutable_graph()->mutable_initializer(0)->set_data_type(99);
  EXPECT_THAT(error_of(proto), HasSubstr("unknown data type 99"));
}

TEST(OnnxErrors, NotAModel)
{
  auto proto = small_model();
  proto.clear_graph();
  EXPECT_THAT(error_of(proto), HasSubstr("model.onnx: graph: the model has no graph"));
  proto = small_model();
  proto.clear_ir_version();
  EXPECT_THAT(error_of(proto), HasSubstr("missing IR version"));
  proto = small_model();
  proto.clear_opset_import();
  EXPECT_THAT(error_of(proto), HasSubstr("requires opset imports"));

  const auto text = modelmgr::formats::testing::to_bytes("this is not a protobuf message at all\n");
  const MemoryByteSource garbage(text);
  try {
    parse_onnx(garbage, "garbage.onnx");
    FAIL() << "expected a ParseError";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.file(), "garbage.onnx");
    EXPECT_THAT(e.what(), HasSubstr("not a valid ONNX protobuf message"));
  }
  const MemoryByteSource empty(std::vector<std::byte>{});
  EXPECT_THROW(parse_onnx(empty, "empty.onnx"), ParseError);
}

TEST(OnnxErrors, TruncatedRealModelFails)
{
  const auto path = testdata_model("pytorch-operator/test_operator_conv");
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string whole = ss.str();
  ASSERT_GT(whole.size(), 1000u);
  // Every cut inside the weights leaves a length-delimited field reaching past the end.
  for (const std::size_t cut : {whole.size() - 1, whole.size() / 2, std::size_t{200}}) {
    const MemoryByteSource src(modelmgr::formats::testing::to_bytes(std::string_view(whole).substr(0, cut)));
    EXPECT_THROW(parse_onnx(src, "model.onnx"), ParseError) << "cut at " << cut;
  }
}

TEST(OnnxErrors, SizeLimitIsCheckedBeforeReading)
{
  // 3 GiB apparent size, 16 bytes held: refused by size, never read.
  const MemoryByteSource src(std::vector<std::byte>(16), 3ull << 30);
  try {
    parse_onnx(src, "big.onnx");
    FAIL() << "expected a ParseError";
  } catch (const ParseError& e) {
    EXPECT_THAT(e.what(), HasSubstr("exceeds the limit"));
    EXPECT_THAT(e.what(), HasSubstr("external-data"));
  }
}
