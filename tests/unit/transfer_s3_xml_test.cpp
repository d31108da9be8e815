// The S3 XML reader (ListObjectsV2 pages, error bodies, multipart answers) and the SigV4
// signer, checked against AWS's documented GET object example.
#include <gtest/gtest.h>

#include <chrono>

#include "runtime/transfer/s3_client.hpp"
#include "runtime/transfer/s3_xml.hpp"

namespace {

using namespace tidesync;
using namespace tidesync::transfer;

TEST(s3_xml, parses_a_truncated_page_with_url_encoded_keys) {
  const char* doc = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>photos</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <EncodingType>url</EncodingType>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents>
    <Key>dir%2Fa+b%C3%A9.txt</Key>
    <LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>
    <Size>434234</Size><StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents><Key>x%26y</Key><LastModified>2009-10-12T17:50:31Z</LastModified>
    <ETag>"abc-2"</ETag><Size>0</Size></Contents>
</ListBucketResult>)";
  auto page = parse_list_page(doc);
  ASSERT_TRUE(page) << page.error().to_string();
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "dir/a b\xC3\xA9.txt");
  EXPECT_EQ(page->objects[0].size, 434234u);
  EXPECT_EQ(page->objects[0].etag, "fba9dede5f27731c9771645a39863328");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(page->objects[0].last_modified), 1255369830);
  EXPECT_EQ(page->objects[1].key, "x&y");
  EXPECT_EQ(page->objects[1].etag, "abc-2");
  EXPECT_EQ(page->objects[1].size, 0u);
}

TEST(s3_xml, last_page_and_plain_keys_with_entities) {
  const char* doc =
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a &amp; b &lt;c&gt; "
      "&quot;d&quot; &apos;e&apos; &#233;&#x20AC;&#x1F600;+</Key><Size>5</Size></Contents>"
      "<CommonPrefixes><Prefix>sub/</Prefix></CommonPrefixes></ListBucketResult>";
  auto page = parse_list_page(doc);
  ASSERT_TRUE(page) << page.error().to_string();
  EXPECT_FALSE(page->truncated);
  ASSERT_EQ(page->objects.size(), 1u);
  // Without EncodingType=url a '+' is a plus.
  EXPECT_EQ(page->objects[0].key, "a & b <c> \"d\" 'e' \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80+");
  ASSERT_EQ(page->common_prefixes.size(), 1u);
  EXPECT_EQ(page->common_prefixes[0], "sub/");
}

TEST(s3_xml, empty_listing_and_self_closing_and_cdata) {
  auto page = parse_list_page(
      "<ListBucketResult><Name>b</Name><Prefix/><IsTruncated>false</IsTruncated>"
      "<!-- nothing --></ListBucketResult>");
  ASSERT_TRUE(page) << page.error().to_string();
  EXPECT_TRUE(page->objects.empty());
  auto node = xml::parse("<a><b><![CDATA[<raw> & stuff]]></b></a>");
  ASSERT_TRUE(node);
  EXPECT_EQ(node->child_text("b"), "<raw> & stuff");
}

TEST(s3_xml, truncated_without_token_is_an_error) {
  auto page =
      parse_list_page("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
  ASSERT_FALSE(page);
  EXPECT_EQ(page.error().code, errc::parse_error);
}

TEST(s3_xml, rejects_malformed_documents) {
  for (const char* bad : {
           "",
           "<a>",
           "<a></b>",
           "<a><b></a></b>",
           "<a>x &bogus; y</a>",
           "<a>x & y</a>",
           "<a>&#0;</a>",
           "<a>&#xD800;</a>",
           "<a>&#x;</a>",
           "<a></a><b></b>",
           "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
           "<a b=c></a>",
           "<ListBucketResult><Contents><Size>12x</Size></Contents></ListBucketResult>",
       }) {
    SCOPED_TRACE(bad);
    auto page = parse_list_page(bad);
    ASSERT_FALSE(page);
    EXPECT_EQ(page.error().code, errc::parse_error);
  }
  std::string deep;
  for (int i = 0; i < 200; ++i)
    deep += "<a>";
  EXPECT_FALSE(xml::parse(deep));
}

TEST(s3_xml, error_documents) {
  auto doc = parse_error_doc(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>
<Resource>/mybucket/a&amp;b</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>)");
  EXPECT_EQ(doc.code, "NoSuchKey");
  EXPECT_EQ(doc.message, "The specified key does not exist.");
  EXPECT_EQ(doc.resource, "/mybucket/a&b");
  EXPECT_EQ(doc.request_id, "4442587FB7D0A2F9");
  EXPECT_EQ(parse_error_doc("<ListBucketResult/>").code, "");
  EXPECT_EQ(parse_error_doc("not xml").code, "");
  EXPECT_EQ(parse_error_doc("").code, "");
}

TEST(s3_xml, multipart_answers) {
  auto id = parse_upload_id(
      "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE</UploadId>"
      "</InitiateMultipartUploadResult>");
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, "VXBsb2FkIElE");
  EXPECT_FALSE(parse_upload_id("<InitiateMultipartUploadResult/>"));

  auto etag = parse_complete_etag(
      "<CompleteMultipartUploadResult><Location>x</Location><ETag>&quot;3858f62230ac3c915f300c"
      "664312c11f-9&quot;</ETag></CompleteMultipartUploadResult>");
  ASSERT_TRUE(etag);
  EXPECT_EQ(*etag, "3858f62230ac3c915f300c664312c11f-9");
  // S3 may answer 200 and put an error in the body.
  auto failed =
      parse_complete_etag("<Error><Code>InternalError</Code><Message>try again</Message></Error>");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().reason, "InternalError");
}

TEST(s3_xml, escape_round_trips) {
  std::string s = "a&b<c>\"d\"'e'";
  auto back = xml::decode_entities(xml::escape(s));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, s);
}

TEST(s3_xml, times) {
  using std::chrono::system_clock;
  EXPECT_EQ(system_clock::to_time_t(parse_s3_time("Wed, 21 Oct 2015 07:28:00 GMT")), 1445412480);
  EXPECT_EQ(system_clock::to_time_t(parse_s3_time("2015-10-21T07:28:00.123Z")), 1445412480);
  EXPECT_EQ(parse_s3_time("yesterday"), system_clock::time_point{});
  EXPECT_EQ(parse_s3_time("Wed, 31 Feb 2015 07:28:00 GMT"), system_clock::time_point{});
}

TEST(s3_sigv4, uri_encoding) {
  EXPECT_EQ(uri_encode("a b/c~d_e.f-g", true), "a%20b/c~d_e.f-g");
  EXPECT_EQ(uri_encode("a b/c", false), "a%20b%2Fc");
  EXPECT_EQ(uri_encode("\xC3\xA9+=&%", true), "%C3%A9%2B%3D%26%25");
}

TEST(s3_sigv4, sha256) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// AWS's documented example "GET Object" (Signature Version 4, header-based auth).
TEST(s3_sigv4, matches_the_aws_get_object_example) {
  sigv4_input in;
  in.method = "GET";
  in.canonical_uri = "/test.txt";
  in.payload_hash = sha256_hex("");
  in.amz_date = "20130524T000000Z";
  in.region = "us-east-1";
  in.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  in.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  in.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
                {"Range", "bytes=0-9"},
                {"x-amz-content-sha256", in.payload_hash},
                {"x-amz-date", "20130524T000000Z"}};
  EXPECT_EQ(sigv4_authorization(in),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  // Header order and value whitespace do not change the signature; the secret does.
  sigv4_input shuffled = in;
  std::swap(shuffled.headers[0], shuffled.headers[3]);
  shuffled.headers[1].second = "  bytes=0-9 ";
  EXPECT_EQ(sigv4_authorization(shuffled), sigv4_authorization(in));
  sigv4_input wrong = in;
  wrong.secret_access_key = "x";
  EXPECT_NE(sigv4_authorization(wrong), sigv4_authorization(in));
  EXPECT_EQ(sigv4_authorization(in).find(in.secret_access_key), std::string::npos);
}

}  // namespace
