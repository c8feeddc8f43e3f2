// Drives Mapp's real Java tracking library (mapp-java, unmodified) for tests/mapp_clients.py.
//
//   java -cp <classes> MappJavaDriver <mode> <trackDomain> <trackId> <https 0|1> <work dir> <scenario>
//
// mode:     HTTP_CLIENT           track and flush (the library flushes on its own worker threads)
//           FILE                  track into <work dir>/MappIntelligenceRequests-<ms>.tmp (no Java sender exists)
// scenario: identified | generated-eid | no-eid   (see SCENARIOS in tests/mapp_clients.py)
// Exit status: 0 when every request queue reported success, 1 otherwise (2: bad arguments).

import com.mapp.intelligence.tracking.MappIntelligence;
import com.mapp.intelligence.tracking.config.MappIntelligenceConfig;
import com.mapp.intelligence.tracking.core.MappIntelligenceTracking;
import com.mapp.intelligence.tracking.data.MappIntelligenceAction;
import com.mapp.intelligence.tracking.data.MappIntelligenceCampaign;
import com.mapp.intelligence.tracking.data.MappIntelligenceCustomer;
import com.mapp.intelligence.tracking.data.MappIntelligenceDataMap;
import com.mapp.intelligence.tracking.data.MappIntelligenceOrder;
import com.mapp.intelligence.tracking.data.MappIntelligencePage;
import com.mapp.intelligence.tracking.data.MappIntelligenceProduct;
import com.mapp.intelligence.tracking.data.MappIntelligenceProductCollection;
import com.mapp.intelligence.tracking.data.MappIntelligenceSession;

import java.io.File;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

public final class MappJavaDriver {
    // MappIntelligenceConfig's default: 2 request queues, plus the one for requests without eid/UA.
    private static final int REQUEST_QUEUES = 2;

    private MappJavaDriver() {
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length < 6) {
            System.err.println("usage: MappJavaDriver <mode> <trackDomain> <trackId> <https> <workDir> <scenario>");
            System.exit(2);
        }
        String mode = args[0];
        String trackDomain = args[1];
        String trackId = args[2];
        boolean https = "1".equals(args[3]);
        String workDir = args[4];
        String scenario = args[5];
        if (!"HTTP_CLIENT".equals(mode) && !"FILE".equals(mode)) {
            System.err.println("unknown mode " + mode);
            System.exit(2);
        }

        MappIntelligenceConfig config = new MappIntelligenceConfig(trackId, trackDomain)
            .setForceSSL(https)
            .setConsumerType(mode)
            .setRequestQueues(REQUEST_QUEUES)
            .setUserAgent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                + "Chrome/124.0.0.0 Safari/537.36")
            .setRemoteAddress("203.0.113.7")
            .setClientHintUserAgent("\"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"")
            .setClientHintUserAgentFullVersionList("\"Chromium\";v=\"124.0.6367.60\", "
                + "\"Google Chrome\";v=\"124.0.6367.60\", \"Not-A.Brand\";v=\"99.0.0.0\"")
            .setClientHintUserAgentModel("\"\"")
            .setClientHintUserAgentMobile("?0")
            .setClientHintUserAgentPlatform("\"Windows\"")
            .setClientHintUserAgentPlatformVersion("\"15.0.0\"")
            .setReferrerURL("https://www.google.com/")
            .setRequestURL("https://shop.example.com/checkout/thank-you?order=ABC123&utm_source=newsletter");
        if ("FILE".equals(mode)) {
            config.setFilePath(workDir.endsWith("/") ? workDir : workDir + File.separator)
                .setFilePrefix("MappIntelligenceRequests");
        }
        if ("identified".equals(scenario)) {
            // The visitor's Smart Pixel cookie, as the servlet request hands it over.
            config.addCookie("wtstp_eid", "2171064588426634614");
        }

        MappIntelligenceTracking mi = new MappIntelligenceTracking(config);
        if ("generated-eid".equals(scenario)) {
            // What an app does for a new visitor: let the library create the everID (and its cookie).
            mi.getUserIdCookie(MappIntelligence.SMART, MappIntelligence.CLIENT_SIDE_COOKIE);
        }

        if ("identified".equals(scenario)) {
            MappIntelligencePage page = new MappIntelligencePage("en.shop.checkout.thank-you")
                .setParameter(1, "Thank you")
                .setParameter(20, "checkout")
                .setCategory(1, "shop")
                .setCategory(2, "checkout");
            MappIntelligenceCustomer customer = new MappIntelligenceCustomer("customer-24")
                .setCustomIdentifier("crm-4711")
                .setEmail("juergen.mueller@example.com")
                .setFirstName("J\u00fcrgen")
                .setLastName("M\u00fcller")
                .setCategory(1, "gold");
            MappIntelligenceOrder order = new MappIntelligenceOrder(109.97)
                .setId("ABC123")
                .setCurrency("EUR")
                .setCouponValue(5)
                .setPaymentMethod("paypal")
                .setParameter(10, "gift wrap");
            MappIntelligenceProductCollection products = new MappIntelligenceProductCollection()
                .add(new MappIntelligenceProduct("065ee2b001")
                    .setCost(59.99).setQuantity(1).setStatus(MappIntelligenceProduct.CONFIRMATION)
                    .setCategory(1, "Shirts").setCategory(2, "Men").setParameter(1, "L"))
                .add(new MappIntelligenceProduct("085eo2f009")
                    .setCost(49.98).setQuantity(2).setStatus(MappIntelligenceProduct.CONFIRMATION)
                    .setCategory(1, "Socks"));
            MappIntelligenceSession session = new MappIntelligenceSession()
                .setLoginStatus("logged in")
                .setParameter(1, "premium");
            MappIntelligenceCampaign campaign = new MappIntelligenceCampaign("newsletter.2024-05")
                .setParameter(1, "footer link");
            mi.track(new MappIntelligenceDataMap()
                .page(page).customer(customer).order(order).product(products).session(session).campaign(campaign));

            MappIntelligenceAction action = new MappIntelligenceAction("newsletter.signup")
                .setParameter(1, "footer")
                .setParameter(2, "double opt-in");
            mi.track(new MappIntelligenceDataMap().action(action));
        } else {
            mi.track(new MappIntelligenceDataMap().page(
                new MappIntelligencePage("en.shop.home").setCategory(1, "shop")));
        }

        // flush() only hands one task per queue to the library's worker threads: wait for all of them.
        int queues = REQUEST_QUEUES + 1;
        CountDownLatch done = new CountDownLatch(queues);
        AtomicBoolean ok = new AtomicBoolean(true);
        mi.setOnFlushComplete((success, queueId) -> {
            if (!success) {
                ok.set(false);
            }
            done.countDown();
        });
        mi.flush();
        if (!done.await(60, TimeUnit.SECONDS)) {
            System.err.println("flush did not complete");
            ok.set(false);
        }
        System.exit(ok.get() ? 0 : 1);
    }
}
