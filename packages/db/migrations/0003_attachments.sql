CREATE TABLE "volume_attachments" (
	"id" uuid PRIMARY KEY NOT NULL,
	"volume_id" uuid NOT NULL,
	"project_id" text NOT NULL,
	"instance_id" text NOT NULL,
	"mountpoint" text DEFAULT '' NOT NULL,
	"attach_status" text NOT NULL,
	"connection_info" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"attached_at" timestamp (6) with time zone,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "services" ADD COLUMN "grpc_address" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "multiattach" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "volume_attachments" ADD CONSTRAINT "volume_attachments_volume_id_volumes_id_fk" FOREIGN KEY ("volume_id") REFERENCES "public"."volumes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "volume_attachments_volume_idx" ON "volume_attachments" USING btree ("volume_id");--> statement-breakpoint
CREATE INDEX "volume_attachments_instance_idx" ON "volume_attachments" USING btree ("project_id","instance_id");